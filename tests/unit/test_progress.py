"""Where a task stands, stage by stage (pipeline/progress.py): one answer for the dashboard
and `orch task watch`."""

from __future__ import annotations

from orchestrator.pipeline.progress import StageStatus, stage_progress
from orchestrator.pipeline.stages import Stage, TaskState

P, C, W, S = StageStatus.PASSED, StageStatus.CURRENT, StageStatus.PENDING, StageStatus.SKIPPED


def statuses(stage: Stage, state: TaskState, skipped: tuple[Stage, ...] = ()) -> list[str]:
    return [mark.status.value for mark in stage_progress(stage, state, skipped)]


def test_an_active_task_has_passed_what_is_before_it() -> None:
    assert statuses(Stage.REVIEW, TaskState.ACTIVE) == [P, P, P, C, W, W, W, W]


def test_a_fail_that_sent_the_task_back_leaves_testing_pending_not_passed() -> None:
    # Testing failed: the task is in development again, and testing will run again.
    assert statuses(Stage.DEVELOPMENT, TaskState.ACTIVE) == [P, P, C, W, W, W, W, W]


def test_where_the_task_stopped_says_why() -> None:
    assert statuses(Stage.TESTING, TaskState.BLOCKED)[4] == "blocked"
    assert statuses(Stage.DEPLOY, TaskState.FAILED)[6] == "failed"
    assert statuses(Stage.ANALYSIS, TaskState.CANCELLED)[0] == "cancelled"


def test_done_is_all_passed_but_the_skipped() -> None:
    skipped = (Stage.DEPLOY_STAGING, Stage.POST_DEPLOY)
    assert statuses(Stage.DEPLOY, TaskState.DONE, skipped) == [P, P, P, P, P, S, P, S]


def test_watch_and_the_dashboard_draw_the_same_answer() -> None:
    from datetime import UTC, datetime

    from orchestrator.api.dashboard_views import progress
    from orchestrator.cli.watch import stage_strip
    from orchestrator.store import Repo, Task

    now = datetime.now(UTC)
    task = Task("aaaa2222", "app", "t", "", Stage.DEVELOPMENT, TaskState.ACTIVE, 2, "b", "/w",
                None, None, None, now, now)  # fmt: skip
    repo = Repo(1, "app", "/srv/app", "main", "tests", None, None, None, None, None,
                frozenset(), False, now)  # fmt: skip
    strip = stage_strip(task, repo, None)
    drawn = {strip.plain[s.start : s.end].split(" ")[0]: str(s.style) for s in strip.spans}
    pills = {pill.stage: pill.status for pill in progress(task, ())}
    assert pills["testing"] == "pending" and drawn["testing"] == "dim"  # not green
    assert pills["analysis"] == "passed" and drawn["analysis"] == "green"
