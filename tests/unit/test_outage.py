"""Riding out database faults: the waits, and what /health is told, from plain values."""

from __future__ import annotations

import logging

import pytest

from orchestrator.scheduler.outage import MAX_WAIT_S, Outage


def test_waits_grow_to_a_ceiling_and_the_outage_is_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage()
    assert outage.problem(0.0) is None
    with caplog.at_level(logging.WARNING):
        waits = [outage.failed("connection refused", float(n)) for n in range(10)]
        assert waits == sorted(waits) and waits[0] < 1 and waits[-1] == MAX_WAIT_S
        problem = outage.problem(12.5)
        assert problem is not None and "12.5s" in problem and "connection refused" in problem
        outage.answered(13.0)
        outage.answered(14.0)  # no outage: nothing to say
    assert outage.problem(14.0) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "unreachable" in messages[0] and "back after 13.0s (10 failed attempts)" in messages[1]


def test_after_an_outage_the_next_one_starts_again_from_the_first_wait() -> None:
    outage = Outage()
    first = outage.failed("x", 0.0)
    outage.failed("x", 1.0)
    outage.answered(2.0)
    assert outage.failed("y", 3.0) == first
