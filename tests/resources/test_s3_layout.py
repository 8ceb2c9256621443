"""The S3 layout rules, without a server: refusals of unsafe configurations, and the property that
branch keys never mix with production keys, for arbitrary prefixes, branch names and configs."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dagster_branch.errors import (
    DagsterBranchConfigError,
    DagsterBranchError,
    NamespaceViolationError,
)
from dagster_branch.naming import Namespace, clean_folder, namespace_of_bucket, namespace_of_key
from dagster_branch.stores.s3_layout import S3Layout

PR_4 = Namespace.parse("pr_4")
PR_42 = Namespace.parse("pr_42")


def test_the_documented_layouts() -> None:
    shared = S3Layout(bucket="acme-data", prefix="lake")
    separate = S3Layout(bucket="acme-data", branch_bucket="acme-branches")
    own = S3Layout(bucket="acme-data", prefix="lake", strategy="bucket")
    for layout in (shared, separate, own):
        layout.validate()

    assert shared.key_for(None, "orders.csv") == "lake/orders.csv"
    assert shared.key_for(PR_42, "/orders//2024.csv") == "_branches/pr_42/lake/orders/2024.csv"
    assert shared.bucket_for(PR_42) == "acme-data"
    assert separate.key_for(None, "orders.csv") == "orders.csv"
    assert (separate.bucket_for(PR_42), separate.key_for(PR_42, "orders.csv")) == (
        "acme-branches",
        "_branches/pr_42/orders.csv",
    )
    assert (own.bucket_for(PR_42), own.key_for(PR_42, "orders.csv")) == (
        "acme-data--pr-42",
        "lake/orders.csv",
    )
    assert own.namespace_root(PR_42) == ("acme-data--pr-42", "")
    assert shared.marker_key(PR_4) == "_branches/pr_4/.dagster-branch.json"
    assert shared.key_for(PR_4, "exports/") == "_branches/pr_4/lake/exports/"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"bucket": "acme-data"}, "Set prefix"),
        ({"bucket": "acme-data", "prefix": "/"}, "Set prefix"),
        ({"bucket": "acme-data", "prefix": "_branches"}, "overlap"),
        ({"bucket": "acme-data", "prefix": "_branches/lake"}, "overlap"),
        ({"bucket": "acme-data", "prefix": "lake", "branch_root": "lake/_branches"}, "overlap"),
        ({"bucket": "acme-data", "branch_bucket": "acme-data"}, "Set prefix"),
        ({"bucket": "acme-data", "prefix": "lake/../x"}, "'..'"),
        ({"bucket": "acme-data", "prefix": "lake", "branch_root": ".."}, "'..'"),
        ({"bucket": "acme-data", "prefix": "lake", "branch_root": "/"}, "branch_root"),
        ({"bucket": "a", "strategy": "bucket", "branch_bucket": "b"}, "unset branch_bucket"),
        ({"bucket": " "}, "bucket is empty"),
    ],
)
def test_unsafe_configurations_are_refused_saying_what_to_change(
    config: dict[str, str], says: str
) -> None:
    layout = S3Layout(**config)  # type: ignore[arg-type]
    with pytest.raises(DagsterBranchConfigError, match=f"(?s){says}"):
        layout.validate()


def test_paths_with_dot_segments_or_nothing_are_refused() -> None:
    layout = S3Layout(bucket="acme-data", prefix="lake")
    for path in ("../lake/orders.csv", "a/./b", "", "///"):
        with pytest.raises(NamespaceViolationError):
            layout.key_for(PR_4, path)
    with pytest.raises(DagsterBranchError, match="over S3's limit"):
        layout.key_for(PR_4, "x" * 1020)


def test_neighbouring_namespaces_never_share_a_prefix() -> None:
    layout = S3Layout(bucket="acme-data", prefix="lake")
    _, pr_4 = layout.namespace_root(PR_4)
    _, pr_42 = layout.namespace_root(PR_42)
    assert not pr_42.startswith(pr_4) and not pr_4.startswith(pr_42)
    assert layout.write_problem(PR_4, "acme-data", pr_42 + "lake/x") is not None


# -- the property -------------------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"),
    min_size=1,
    max_size=12,
)
folder = st.lists(segment, max_size=3).map("/".join)
padded_folder = st.tuples(st.sampled_from(["", "/"]), folder, st.sampled_from(["", "/"])).map(
    "".join
)
bucket = st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}[a-z0-9]", fullmatch=True)
namespace = st.one_of(
    st.integers(min_value=1, max_value=10**12 - 1).map(Namespace.for_pull_request),
    st.text(min_size=1, max_size=300).filter(str.strip).map(Namespace.for_branch),
    st.text(min_size=1, max_size=40).map(Namespace.for_developer),
)
path = st.lists(segment, min_size=1, max_size=4).map("/".join)


@st.composite
def layouts(draw: st.DrawFn) -> S3Layout:
    production = draw(bucket)
    strategy = draw(st.sampled_from(["prefix", "bucket"]))
    branch_bucket = None
    if strategy == "prefix":
        branch_bucket = draw(st.sampled_from([None, production, "acme-branches"]))
    return S3Layout(
        bucket=production,
        prefix=draw(padded_folder),
        strategy=strategy,
        branch_root=draw(st.one_of(st.just("_branches"), padded_folder)),
        branch_bucket=branch_bucket,
    )


def _owner_of(layout: S3Layout, bucket: str, key: str) -> Namespace | str | None:
    """Who a stored object belongs to, read back from its bucket and key alone: a namespace,
    ``"production"``, or ``None`` (some other tenant of the bucket)."""
    if layout.strategy == "bucket" and bucket != layout.bucket:
        return namespace_of_bucket(bucket, layout.bucket)
    if layout.strategy == "prefix" and bucket == layout.branch_data_bucket:
        namespace = namespace_of_key(key, root=clean_folder(layout.branch_root))
        if namespace is not None:
            return namespace
    if bucket == layout.bucket and key.startswith(layout.production_folder):
        return "production"
    return None


def _validates(layout: S3Layout) -> bool:
    try:
        layout.validate()
    except DagsterBranchConfigError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(layout=layouts(), namespaces=st.lists(namespace, min_size=2, max_size=4), rel=path)
def test_branch_keys_stay_in_their_namespace_and_production_keys_in_none(
    layout: S3Layout, namespaces: list[Namespace], rel: str
) -> None:
    assume(_validates(layout))
    assume(all(part not in {".", ".."} for part in rel.split("/")))
    try:
        production_key = layout.key_for(None, rel)
    except DagsterBranchError:
        assume(False)  # a path too long for S3: refused, which is fine
    assert _owner_of(layout, layout.bucket, production_key) == "production"
    for ns in namespaces:
        try:
            branch_key = layout.key_for(ns, rel)
        except DagsterBranchError:
            continue  # too long once prefixed: refused, never shortened into someone else's
        own_bucket, own_prefix = layout.namespace_root(ns)
        assert layout.bucket_for(ns) == own_bucket
        assert branch_key.startswith(own_prefix)
        assert _owner_of(layout, own_bucket, branch_key) == ns
        assert layout.write_problem(ns, own_bucket, branch_key) is None
        # no production key is under any branch namespace, and a branch may not write it
        assert not (own_bucket == layout.bucket and production_key.startswith(own_prefix))
        assert layout.write_problem(ns, layout.bucket, production_key) is not None
        # and production may not write into a branch namespace
        assert layout.write_problem(None, own_bucket, branch_key) is not None
        for other in namespaces:
            if other != ns:
                assert layout.write_problem(other, own_bucket, branch_key) is not None
