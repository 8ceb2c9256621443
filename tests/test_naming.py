import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_branch import DagsterBranchNamingError, Namespace
from dagster_branch.naming import (
    RESERVED_BUCKET_PREFIXES,
    RESERVED_BUCKET_SUFFIXES,
    bucket_name,
    key_prefix,
    namespace_of_bucket,
    namespace_of_key,
    namespace_of_schema,
    namespace_of_table,
    schema_name,
    table_name,
    table_prefix,
)

branch_names = st.text(min_size=1, max_size=300).filter(lambda s: s.strip())
pr_ids = st.integers(min_value=1, max_value=10**12 - 1)
namespaces = st.one_of(
    pr_ids.map(Namespace.for_pull_request),
    branch_names.map(Namespace.for_branch),
    st.text(min_size=1, max_size=80).map(Namespace.for_developer),
)
schema_bases = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=120,
)
bucket_bases = st.from_regex(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", fullmatch=True)
LIMITS = {"postgresql": 63, "redshift": 127, "snowflake": 255, "bigquery": 1024}


def assert_valid_bucket(name: str) -> None:
    assert 3 <= len(name) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name)
    assert ".." not in name
    assert not name.startswith(RESERVED_BUCKET_PREFIXES)
    assert not name.endswith(RESERVED_BUCKET_SUFFIXES)
    with pytest.raises(ValueError):
        ipaddress.IPv4Address(name)


def test_documented_examples() -> None:
    pr = Namespace.for_pull_request("42")
    assert pr.key == "pr_42" and pr.pull_request_id == "42"
    assert schema_name("analytics", pr) == "analytics__pr_42"
    assert table_prefix(pr) == "pr_42__"
    assert table_name("orders", pr) == "pr_42__orders"
    assert bucket_name("acme-data", pr) == "acme-data--pr-42"
    assert key_prefix("exports", pr) == "_branches/pr_42/exports/"
    assert Namespace.for_developer("alice").key == "dev_alice"
    assert re.fullmatch(
        r"br_feature_orders_[0-9a-f]{8}", Namespace.for_branch("feature/orders").key
    )


@pytest.mark.parametrize(
    "bad", ["0", "-1", "1e3", "42; DROP", "", " ", "4 2", "0x2a", "\uff11\uff12"]
)
def test_bad_pull_request_ids_are_refused(bad: str) -> None:
    with pytest.raises(DagsterBranchNamingError, match="positive whole number"):
        Namespace.for_pull_request(bad)


@pytest.mark.parametrize(
    "branch",
    ["feat/'; DROP SCHEMA analytics CASCADE; --", "../../etc", "a/b/c", "ünïcödé", "🚀🔥",
     "x" * 1000, "release/2024.1", "  spaced  out  ", "UPPER_case", "__", "--", "/* c */"],
)  # fmt: skip
def test_unusual_branch_names_give_safe_names(branch: str) -> None:
    ns = Namespace.for_branch(branch)
    assert re.fullmatch(r"br_[a-z0-9]+(_[a-z0-9]+)*_[0-9a-f]{8}", ns.key)
    assert len(ns.key) <= 36
    assert namespace_of_schema(schema_name("analytics", ns), "analytics") == ns
    assert_valid_bucket(bucket_name("acme-data", ns))


@pytest.mark.parametrize("branch", ["", "   "])
def test_empty_branch_is_refused(branch: str) -> None:
    with pytest.raises(DagsterBranchNamingError, match="empty"):
        Namespace.for_branch(branch)


@pytest.mark.parametrize(
    "key", ["pr_0", "pr_01", "pr_x", "br_feat", "br_feat_XYZ12345", "dev_", "dev__a", "prod",
            "analytics", "pr_42 ", "PR_42", "dev_a__b", ""],
)  # fmt: skip
def test_parse_refuses_non_keys(key: str) -> None:
    assert Namespace.try_parse(key) is None
    with pytest.raises(DagsterBranchNamingError):
        Namespace.parse(key)


@given(namespaces)
def test_keys_round_trip(ns: Namespace) -> None:
    assert Namespace.parse(ns.key) == ns
    assert "__" not in ns.key


@settings(max_examples=300)
@given(namespaces, schema_bases, st.sampled_from(sorted(LIMITS.values())))
def test_schema_names_are_valid_and_parse_back(ns: Namespace, base: str, limit: int) -> None:
    name = schema_name(base, ns, max_length=limit)
    assert len(name.encode()) <= limit
    assert name != base
    assert name == schema_name(base, ns, max_length=limit)  # deterministic
    assert namespace_of_schema(name, base, max_length=limit) == ns
    assert namespace_of_schema(base, base, max_length=limit) is None


@settings(max_examples=300)
@given(branch_names, branch_names, schema_bases)
def test_different_branches_never_share_a_schema(a: str, b: str, base: str) -> None:
    if a == b:
        return
    assert schema_name(base, Namespace.for_branch(a)) != schema_name(base, Namespace.for_branch(b))


@settings(max_examples=300)
@given(namespaces, namespaces, schema_bases)
def test_a_name_never_parses_back_to_another_namespace(
    ns: Namespace, other: Namespace, base: str
) -> None:
    name = schema_name(base, ns)
    if other != ns:
        assert namespace_of_schema(name, base) != other
    assert namespace_of_table(table_name("orders", ns)) == ns


@settings(max_examples=300)
@given(namespaces, bucket_bases)
def test_bucket_names_obey_s3_rules_and_parse_back(ns: Namespace, base: str) -> None:
    name = bucket_name(base, ns)
    assert_valid_bucket(name)
    assert name != base
    assert namespace_of_bucket(name, base) == ns
    assert namespace_of_bucket(base, base) is None


@settings(max_examples=300)
@given(namespaces, st.text(max_size=60))
def test_key_prefixes_belong_to_their_namespace(ns: Namespace, prefix: str) -> None:
    branch_prefix = key_prefix(prefix, ns)
    assert branch_prefix.endswith("/")
    assert namespace_of_key(branch_prefix) == ns
    assert namespace_of_key(branch_prefix + "part-0.parquet") == ns


def test_pr_4_prefix_does_not_cover_pr_42() -> None:
    assert not key_prefix("", Namespace.parse("pr_42")).startswith(
        key_prefix("", Namespace.parse("pr_4"))
    )


@pytest.mark.parametrize("root", ["", "/", "..", "a/../b"])
def test_unusable_branch_roots_are_refused(root: str) -> None:
    with pytest.raises(DagsterBranchNamingError, match="branch_root"):
        key_prefix("data", Namespace.parse("pr_1"), root=root)


def test_developer_names_that_would_hit_a_reserved_bucket_suffix_are_hashed() -> None:
    ns = Namespace.for_developer("s3alias")
    assert_valid_bucket(bucket_name("acme", ns))
