"""should_clean: the one decision shared by the sensor, the schedule, the CLI and CI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from dagster_branch import Namespace
from dagster_branch.decision import Decision, DecisionKind, decide_all, should_clean
from dagster_branch.pull_requests import PullRequestState, PullRequestStatus
from dagster_branch.sources.base import SourceAnswer

NOW = datetime(2024, 8, 28, 12, 0, tzinfo=timezone.utc)
PR42 = Namespace.for_pull_request(42)
BRANCH = Namespace.for_branch("spike/idea")
DEV = Namespace.for_developer("ada")


def merged(minutes_ago: float, number: int = 42) -> PullRequestState:
    return PullRequestState(
        number=number, state="merged", merged_at=NOW - timedelta(minutes=minutes_ago)
    )


def test_merged_past_the_grace_period_is_cleaned_with_its_closing_time() -> None:
    decision = should_clean(PR42, merged(60), now=NOW)
    assert decision == Decision(
        clean=True,
        reason="pull request #42 was merged 1 hour ago",
        ended_at=NOW - timedelta(hours=1),
        kind=DecisionKind.FINISHED,
        state=merged(60),
    )
    assert decision.requires_closed


def test_closed_within_the_grace_period_waits_and_says_until_when() -> None:
    decision = should_clean(PR42, merged(3), now=NOW, grace_period=timedelta(minutes=10))
    assert not decision.clean
    assert decision.kind is DecisionKind.WAITING
    assert "3 minutes ago" in decision.reason
    assert (NOW + timedelta(minutes=7)).isoformat() in decision.reason


def test_open_is_kept_unless_stale_after_is_set_and_it_is_idle() -> None:
    touched = PullRequestState(number=42, state="open", updated_at=NOW - timedelta(days=30))
    assert not should_clean(PR42, touched, now=NOW).clean
    assert not should_clean(PR42, touched, now=NOW, stale_after=timedelta(days=31)).clean
    stale = should_clean(PR42, touched, now=NOW, stale_after=timedelta(days=14))
    assert stale.clean and stale.kind is DecisionKind.STALE
    assert stale.ended_at == touched.updated_at
    assert not stale.requires_closed, "nothing is closed: the job must not insist"


def test_recent_store_activity_keeps_an_old_open_pull_request() -> None:
    touched = PullRequestState(number=42, state="open", updated_at=NOW - timedelta(days=30))
    decision = should_clean(
        PR42,
        touched,
        now=NOW,
        stale_after=timedelta(days=14),
        last_activity=NOW - timedelta(days=1),
    )
    assert not decision.clean


def test_namespaces_without_a_pull_request() -> None:
    assert "set stale_after" in should_clean(BRANCH, None, now=NOW).reason
    unknown_age = should_clean(DEV, None, now=NOW, stale_after=timedelta(days=7))
    assert not unknown_age.clean and "unknown age" in unknown_age.reason
    idle = should_clean(
        DEV, None, now=NOW, stale_after=timedelta(days=7), last_activity=NOW - timedelta(days=8)
    )
    assert idle.clean and idle.kind is DecisionKind.STALE


def test_a_pull_request_namespace_is_never_cleaned_without_its_pull_request() -> None:
    decision = should_clean(
        PR42, None, now=NOW, stale_after=timedelta(days=1), last_activity=NOW - timedelta(days=9)
    )
    assert not decision.clean


def test_mismatched_or_timeless_answers_are_not_trusted() -> None:
    assert not should_clean(PR42, merged(600, number=43), now=NOW).clean
    timeless = PullRequestState(number=42, state=PullRequestStatus.CLOSED)
    decision = should_clean(PR42, timeless, now=NOW)
    assert not decision.clean and "no closing time" in decision.reason


def test_decide_all_keeps_unknown_namespaces() -> None:
    pr7 = Namespace.for_pull_request(7)
    answer = SourceAnswer(
        states={PR42: merged(60)},
        unknown={pr7: "rate limited"},
        without_pull_request=frozenset({DEV}),
    )
    decisions = decide_all([PR42, pr7, DEV, BRANCH], answer, now=NOW)
    assert decisions[PR42].clean
    assert decisions[pr7].reason == "state unknown: rate limited"
    assert decisions[DEV].kind is DecisionKind.ACTIVE
    assert not decisions[BRANCH].clean
    assert "gave no answer" in decisions[BRANCH].reason


@given(
    minutes_ago=st.integers(min_value=-600, max_value=60 * 24 * 60),
    grace_minutes=st.integers(min_value=0, max_value=24 * 60),
    state=st.sampled_from([PullRequestStatus.CLOSED, PullRequestStatus.MERGED]),
)
def test_finished_is_cleaned_exactly_when_the_grace_period_has_passed(
    minutes_ago: int, grace_minutes: int, state: PullRequestStatus
) -> None:
    closed_at = NOW - timedelta(minutes=minutes_ago)
    pull = PullRequestState(number=42, state=state, closed_at=closed_at)
    decision = should_clean(PR42, pull, now=NOW, grace_period=timedelta(minutes=grace_minutes))
    assert decision.clean == (minutes_ago >= grace_minutes)
    assert decision.ended_at == closed_at


@given(
    days_idle=st.integers(min_value=0, max_value=3650),
    stale_days=st.one_of(st.none(), st.integers(min_value=1, max_value=365)),
)
def test_open_is_cleaned_only_when_stale_after_is_set(
    days_idle: int, stale_days: int | None
) -> None:
    pull = PullRequestState(number=42, state="open", updated_at=NOW - timedelta(days=days_idle))
    stale_after = timedelta(days=stale_days) if stale_days is not None else None
    decision = should_clean(PR42, pull, now=NOW, stale_after=stale_after)
    assert decision.clean == (stale_days is not None and days_idle >= stale_days)
