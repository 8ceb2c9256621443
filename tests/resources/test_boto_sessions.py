"""Resources share botocore's parsed models, and nothing else, between their boto3 sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_branch import BranchS3Resource
from dagster_branch.boto_sessions import new_session


def _loader(resource: BranchS3Resource) -> object:
    resource.get_client()
    return resource._session._session.get_component("data_loader")  # type: ignore[union-attr]


def test_two_resources_read_the_s3_model_through_one_loader(s3_endpoint: str) -> None:
    first = BranchS3Resource(bucket="acme-data", endpoint_url=s3_endpoint)
    second = BranchS3Resource(bucket="acme-data", endpoint_url=s3_endpoint)

    assert _loader(first) is _loader(second)
    assert first._session is not second._session  # each instance keeps a session of its own


def test_each_session_keeps_its_own_profile_and_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "credentials"
    config.write_text(
        "[team-a]\naws_access_key_id = AKIA_TEAM_A\naws_secret_access_key = a\n"
        "[team-b]\naws_access_key_id = AKIA_TEAM_B\naws_secret_access_key = b\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    team_a, team_b = new_session("team-a"), new_session("team-b")

    assert team_a.profile_name == "team-a"
    assert team_a.get_credentials().access_key == "AKIA_TEAM_A"  # type: ignore[union-attr]
    assert team_b.get_credentials().access_key == "AKIA_TEAM_B"  # type: ignore[union-attr]
