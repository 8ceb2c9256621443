"""GitRemoteBranches against real git repositories made in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dagster_branch import GitRemoteBranches, Namespace
from dagster_branch.errors import SourceUnavailableError, UnexpectedResponseError
from dagster_branch.pull_requests import PullRequestStatus
from tests.support.servers import free_port

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "HOME": "/tmp",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=GIT_ENV, check=True
    )
    return result.stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A repository with main and three feature branches, each with its own commit."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "README")
    for branch in ("feature/merged", "feature/abandoned", "feature/alive"):
        git(repo, "checkout", "-q", "-b", branch, "main")
        commit(repo, branch.replace("/", "-"))
    git(repo, "checkout", "-q", "main")
    return repo


def br(branch: str) -> Namespace:
    return Namespace.for_branch(branch)


def source(remote: Path, tmp_path: Path, **overrides: object) -> GitRemoteBranches:
    settings: dict[str, object] = {"remote": str(remote), "cache_dir": str(tmp_path / "cache")}
    settings.update(overrides)
    return GitRemoteBranches(**settings)  # type: ignore[arg-type]


def test_branch_lifecycle_open_then_merged_or_closed(remote: Path, tmp_path: Path) -> None:
    merged, abandoned, alive = br("feature/merged"), br("feature/abandoned"), br("feature/alive")
    live = [merged, abandoned, alive]
    first = source(remote, tmp_path).states_of(live)
    assert {ns: s.state for ns, s in first.states.items()} == dict.fromkeys(
        live, PullRequestStatus.OPEN
    )
    assert first.states[alive].head_branch == "feature/alive"
    assert first.requests == 1, "one ls-remote"

    # "PR merged": merge and delete the branch; "PR closed": delete without merging.
    git(remote, "merge", "-q", "--no-ff", "-m", "merge", "feature/merged")
    git(remote, "branch", "-q", "-D", "feature/merged", "feature/abandoned")

    second = source(remote, tmp_path).states_of(live, cursor=first.cursor)
    assert second.states[merged].state is PullRequestStatus.MERGED
    assert second.states[abandoned].state is PullRequestStatus.CLOSED
    assert second.states[alive].state is PullRequestStatus.OPEN
    assert second.states[merged].closed_at is not None
    assert second.requests == 2, "one ls-remote and one fetch of main"

    third = source(remote, tmp_path).states_of(live, cursor=second.cursor)
    assert third.states == second.states, "closing times are stable through the cursor"
    assert third.requests == 1


def test_a_fresh_branch_off_main_is_open_not_merged(remote: Path, tmp_path: Path) -> None:
    git(remote, "branch", "feature/just-created", "main")
    answer = source(remote, tmp_path).states_of([br("feature/just-created")])
    assert answer.states[br("feature/just-created")].state is PullRequestStatus.OPEN


def test_new_commits_move_updated_at(remote: Path, tmp_path: Path) -> None:
    alive = br("feature/alive")
    first = source(remote, tmp_path).states_of([alive])
    unchanged = source(remote, tmp_path).states_of([alive], cursor=first.cursor)
    assert unchanged.states[alive].updated_at == first.states[alive].updated_at
    git(remote, "checkout", "-q", "feature/alive")
    commit(remote, "more")
    git(remote, "checkout", "-q", "main")
    moved = source(remote, tmp_path).states_of([alive], cursor=unchanged.cursor)
    assert moved.states[alive].updated_at > first.states[alive].updated_at  # type: ignore[operator]


def test_pull_request_and_developer_namespaces(remote: Path, tmp_path: Path) -> None:
    pr, dev = Namespace.for_pull_request(7), Namespace.for_developer("ada")
    answer = source(remote, tmp_path).states_of([pr, dev])
    assert "knows branches, not pull requests" in answer.unknown[pr]
    assert answer.without_pull_request == {dev}
    assert source(remote, tmp_path).state_of(pr) is None


def test_default_branch_can_be_named(remote: Path, tmp_path: Path) -> None:
    git(remote, "branch", "-q", "release", "main")
    git(remote, "checkout", "-q", "release")
    git(remote, "merge", "-q", "--no-ff", "-m", "merge", "feature/merged")
    git(remote, "checkout", "-q", "main")
    ns = br("feature/merged")
    to_release = source(remote, tmp_path, default_branch="release")
    to_main = source(remote, tmp_path, cache_dir=str(tmp_path / "main-cache"))
    before_release, before_main = to_release.states_of([ns]), to_main.states_of([ns])

    git(remote, "branch", "-q", "-D", "feature/merged")

    by_release = to_release.states_of([ns], cursor=before_release.cursor)
    by_main = to_main.states_of([ns], cursor=before_main.cursor)
    assert by_release.states[ns].state is PullRequestStatus.MERGED
    assert by_main.states[ns].state is PullRequestStatus.CLOSED, "main never got the commit"


def test_an_unreachable_remote_is_unavailable(tmp_path: Path) -> None:
    missing = GitRemoteBranches(remote=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(SourceUnavailableError, match="could not list the branches"):
        missing.states_of([br("x")])


def test_credentials_in_the_remote_url_never_show(tmp_path: Path) -> None:
    url = f"http://ada:s3cret-token@127.0.0.1:{free_port()}/repo.git"
    with pytest.raises(SourceUnavailableError) as caught:
        GitRemoteBranches(remote=url, cache_dir=str(tmp_path / "c")).states_of([br("x")])
    assert "s3cret-token" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert "s3cret-token" not in repr(GitRemoteBranches(remote=url))


def test_a_remote_without_branches_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "--bare")
    with pytest.raises(UnexpectedResponseError, match="no branches"):
        GitRemoteBranches(remote=str(empty)).states_of([br("x")])


def test_an_option_is_not_a_remote() -> None:
    with pytest.raises(Exception, match="not empty or an option"):
        GitRemoteBranches(remote="--upload-pack=touch /tmp/pwned")
