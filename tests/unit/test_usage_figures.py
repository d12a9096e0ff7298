"""The usage figures /status shows, computed from the running totals' rows (plain values).

/status reads the usage totals once and derives both figures from them; these pin what each
figure means, whichever rows it is given.
"""

from __future__ import annotations

import pytest

from orchestrator.store import StageUsage, UsageTally, average_tokens, usage_by_stage


def tally(stage: str, role: str, calls: int, measured: int = 0, tokens: int = 0) -> UsageTally:
    return UsageTally(stage, role, calls, 10 * calls, 5 * calls, 0.5 * calls, measured, tokens)


def test_usage_by_stage_sums_the_roles_of_a_stage() -> None:
    usage = [
        tally("testing", "tester", 2),
        tally("testing", "developer", 1),
        tally("review", "reviewer", 4),
    ]
    assert usage_by_stage(usage) == {
        "testing": StageUsage(3, 30, 15, 1.5),
        "review": StageUsage(4, 40, 20, 2.0),
    }


def test_no_usage_is_no_stage() -> None:
    assert usage_by_stage([]) == {}


def test_average_tokens_counts_only_the_measured_calls_of_the_roles_asked() -> None:
    usage = [
        tally("testing", "tester", 5, measured=2, tokens=420),  # 3 calls reported no tokens
        tally("deploy-staging", "deployer", 1, measured=1, tokens=100),
        tally("development", "developer", 7, measured=7, tokens=7_000),  # not asked about
    ]
    assert average_tokens(usage, ("tester", "deployer")) == pytest.approx(520 / 3)
    assert average_tokens(usage, ("tester",)) == pytest.approx(210)


def test_no_measured_call_has_no_average() -> None:
    assert average_tokens([tally("testing", "tester", 3)], ("tester",)) is None
    assert average_tokens([], ("tester",)) is None
