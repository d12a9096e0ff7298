"""Where a task stands in its pipeline, stage by stage: one answer for every view.

The dashboard's strip and `orch task watch` both draw it from here. It is read from where
the task is now, not from its history: a stage the task passed and was sent back before
(a FAIL at testing returns it to development) is pending again, because it will run again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.pipeline.pipelines import BUILT_IN, Pipeline
from orchestrator.pipeline.stages import STAGE_ORDER, TaskState

# By name: a stage, or the name an event records.
STAGE_INDEX: dict[str, int] = {stage.value: index for index, stage in enumerate(STAGE_ORDER)}


class StageStatus(StrEnum):
    """How one stage stands for a task."""

    PASSED = "passed"
    CURRENT = "current"  # the task's stage, while it is active
    PENDING = "pending"  # still to run (again, after a rollback)
    SKIPPED = "skipped"  # switched off for the repo
    BLOCKED = "blocked"  # the task's stage, where it waits for a person
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class StageMark:
    """One stage and how it stands."""

    stage: str
    status: StageStatus


def stage_progress(
    stage: str, state: TaskState, skipped: Iterable[str], pipeline: Pipeline = BUILT_IN
) -> list[StageMark]:
    """Every stage of the task's pipeline, in order, for a task at `stage` in `state`."""
    skip = set(skipped)
    order = pipeline.order
    here = order.index(stage)
    marks = []
    for index, each in enumerate(order):
        if each in skip:
            status = StageStatus.SKIPPED
        elif state is TaskState.DONE or index < here:
            status = StageStatus.PASSED
        elif index > here:
            status = StageStatus.PENDING
        elif state is TaskState.ACTIVE:
            status = StageStatus.CURRENT
        else:
            status = StageStatus(state.value)
        marks.append(StageMark(each, status))
    return marks
