"""Retry, defer and give-up decisions, with plain values."""

from __future__ import annotations

import pytest

from orchestrator.jobs.policy import (
    Next,
    after_agent_failure,
    after_tool_error,
    agent_alert_kind,
    backoff_s,
)
from orchestrator.transport.types import ErrorKind


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 0.0), (1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (5, 480.0), (6, 600.0), (60, 600.0)],
)
def test_backoff_starts_at_30s_doubles_and_caps_at_10_minutes(
    failures: int, expected: float
) -> None:
    assert backoff_s(failures, 30.0, 600.0) == expected


def test_backoff_takes_fractions() -> None:
    assert backoff_s(3, 0.2, 10.0) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.NO_ARTIFACT,
        ErrorKind.AGENT_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.SPAWN_FAILED,
        ErrorKind.PROTOCOL_ERROR,
    ],
)
def test_agent_errors_are_retried_within_the_budget(kind: ErrorKind) -> None:
    assert after_agent_failure(kind, failures_before=0, retries=2) is Next.RETRY
    assert after_agent_failure(kind, failures_before=1, retries=2) is Next.RETRY
    assert after_agent_failure(kind, failures_before=2, retries=2) is Next.GIVE_UP


@pytest.mark.parametrize("kind", [ErrorKind.AUTH, ErrorKind.CLI_MISSING])
def test_auth_and_missing_cli_are_never_retried(kind: ErrorKind) -> None:
    assert after_agent_failure(kind, failures_before=0, retries=5) is Next.GIVE_UP


def test_zero_retries_gives_up_at_once() -> None:
    assert after_agent_failure(ErrorKind.TIMEOUT, failures_before=0, retries=0) is Next.GIVE_UP


def test_tool_errors_are_deferred_until_the_infra_budget_is_spent() -> None:
    assert [after_tool_error(n, budget=3) for n in range(5)] == [
        Next.RETRY,
        Next.RETRY,
        Next.RETRY,
        Next.GIVE_UP,
        Next.GIVE_UP,
    ]


def test_an_agent_failure_alert_is_named_once_agent() -> None:
    assert agent_alert_kind(ErrorKind.AGENT_ERROR) == "agent_error"  # not agent_agent_error
    assert agent_alert_kind(ErrorKind.TIMEOUT) == "agent_timeout"
    assert agent_alert_kind(ErrorKind.NO_ARTIFACT) == "agent_no_artifact"
