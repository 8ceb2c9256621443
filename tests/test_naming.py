import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_branch import Namespace
from dagster_branch.errors import DagsterBranchNamingError
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
    assert Namespace.for_developer("alice").key == "dev_alice_2bd806c97f0e00af"
    assert Namespace.for_branch("feature/orders").key == "br_feature_orders_da110e2bb5cd48cc"


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
    assert re.fullmatch(r"br_[a-z0-9]+(_[a-z0-9]+)*_[0-9a-f]{16}", ns.key)
    assert len(ns.key) <= 36
    assert namespace_of_schema(schema_name("analytics", ns), "analytics") == ns
    assert_valid_bucket(bucket_name("acme-data", ns))


@pytest.mark.parametrize("branch", ["", "   "])
def test_empty_branch_is_refused(branch: str) -> None:
    with pytest.raises(DagsterBranchNamingError, match="empty"):
        Namespace.for_branch(branch)


@pytest.mark.parametrize(
    "key", ["pr_0", "pr_01", "pr_x", "br_feat", "br_feat_XYZ12345", "dev_", "dev__a", "prod",
            "analytics", "pr_42 ", "PR_42", "dev_a__b", "",
            "dev_alice",  # the shape before developer keys always carried a hash
            "br_feat_87c9ffee",  # an 8-hex (32-bit) branch hash
            "br_feature_add_orders_87c9ffee7eb18433",  # a slug longer than any builder makes
            "dev_alice_2BD806C97F0E00AF"],
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


# -- collisions (64-bit hashes) ------------------------------------------------------------------

# Found by a birthday search under the 32-bit hash (8 hex digits): 168,936 branch names of this
# shape, 2.7 s. Both gave br_feature_add_orders_table_ccac03eb, so one branch read and dropped
# the other's tables.
COLLIDED_UNDER_32_BITS = ("feature/add-orders-table-2084", "feature/add-orders-table-168935")


def test_the_branch_names_that_collided_under_a_32_bit_hash_now_differ() -> None:
    a, b = (Namespace.for_branch(name) for name in COLLIDED_UNDER_32_BITS)
    assert a != b
    assert schema_name("analytics", a) != schema_name("analytics", b)
    assert bucket_name("acme-data", a) != bucket_name("acme-data", b)
    assert key_prefix("lake", a) != key_prefix("lake", b)
    assert namespace_of_schema(schema_name("analytics", a), "analytics") == a


def test_a_user_named_like_another_users_namespace_gets_another_namespace() -> None:
    alice = Namespace.for_developer("Alice!")
    impostor = Namespace.for_developer(alice.key.removeprefix("dev_"))
    assert alice != impostor
    assert Namespace.for_developer("alice") not in {alice, impostor}
    assert Namespace.for_developer("Alice") != Namespace.for_developer("alice")


# Inputs of every kind, drawn so that near misses (same slug, same prefix) are common.
near_names = st.one_of(
    st.text(alphabet="aA_-/ !1é", min_size=1, max_size=40),
    st.text(min_size=1, max_size=300),
).filter(lambda s: s.strip())
labelled_inputs = st.one_of(
    st.tuples(st.just("pr"), pr_ids.map(str)),
    st.tuples(st.just("br"), near_names),
    st.tuples(st.just("dev"), near_names),
)
BUILDERS = {
    "pr": Namespace.for_pull_request,
    "br": Namespace.for_branch,
    "dev": Namespace.for_developer,
}


@settings(max_examples=1000)
@given(labelled_inputs, labelled_inputs)
def test_distinct_inputs_give_distinct_namespaces_and_names(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    if a == b:
        return
    ns_a, ns_b = (BUILDERS[kind](raw) for kind, raw in (a, b))
    assert ns_a != ns_b
    for limit in LIMITS.values():
        assert schema_name("analytics", ns_a, max_length=limit) != schema_name(
            "analytics", ns_b, max_length=limit
        )
    assert table_name("orders", ns_a) != table_name("orders", ns_b)
    assert bucket_name("acme-data", ns_a) != bucket_name("acme-data", ns_b)
    assert key_prefix("lake", ns_a) != key_prefix("lake", ns_b)


@settings(max_examples=300)
@given(labelled_inputs, schema_bases, st.sampled_from(sorted(LIMITS.items())))
def test_every_namespace_fits_every_backend_limit_with_any_base(
    raw: tuple[str, str], base: str, limit: tuple[str, int]
) -> None:
    ns = BUILDERS[raw[0]](raw[1])
    assert Namespace.parse(ns.key) == ns
    _, max_bytes = limit
    schema = schema_name(base, ns, max_length=max_bytes)
    table = table_name(base, ns, max_length=max_bytes)
    assert len(schema.encode()) <= max_bytes and len(table.encode()) <= max_bytes
    assert namespace_of_schema(schema, base, max_length=max_bytes) == ns
    assert namespace_of_table(table) == ns
    assert_valid_bucket(bucket_name("b" * 63, ns))


@settings(max_examples=300)
@given(schema_bases, schema_bases, st.sampled_from(sorted(LIMITS.values())))
def test_long_bases_shortened_with_a_hash_stay_apart(a: str, b: str, limit: int) -> None:
    ns = Namespace.for_pull_request(7)
    if a == b:
        return
    assert schema_name("x" * limit + a, ns, max_length=limit) != schema_name(
        "x" * limit + b, ns, max_length=limit
    )
