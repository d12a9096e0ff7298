"""When `orch worker --drain` ends (scheduler/drain.py), on plain counts."""

from __future__ import annotations

from orchestrator.scheduler.drain import DrainEnd, drain_end


def test_nothing_left_ends_the_drain_cleanly() -> None:
    assert drain_end(0, 0, []) == DrainEnd()


def test_live_work_keeps_it_going() -> None:
    assert drain_end(2, 2, []) is None
    assert drain_end(1, 0, []) is None  # an active task whose next job is being made
    assert drain_end(0, 1, []) is None  # a job still held under a lease


def test_only_self_deploys_left_ends_it_naming_them() -> None:
    assert drain_end(2, 2, ["bbbb2222", "aaaa1111"]) == DrainEnd(("aaaa1111", "bbbb2222"))


def test_a_self_deploy_among_other_work_waits_for_the_rest() -> None:
    assert drain_end(2, 2, ["aaaa1111"]) is None
    assert drain_end(1, 2, ["aaaa1111"]) is None  # a deferred job of another task
