"""What every job runs with, how it can end, and how its verdict is committed."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from orchestrator.pipeline.gates import GateStatus
from orchestrator.pipeline.stages import Producer, TaskState
from orchestrator.pipeline.transitions import Rules, judge
from orchestrator.proc import CancelToken, Started
from orchestrator.runners.base import RunnerOutcome, RunnerRequest
from orchestrator.settings import Settings
from orchestrator.store import Claimant, Job, JobMetrics, Repo, Store, Task, Verdict
from orchestrator.workspace import checkout, layout

log = logging.getLogger(__name__)


class JobEnd(StrEnum):
    """How a job ended, for the scheduler."""

    VERDICT = "verdict"  # a verdict was committed; the next stage's job is queued
    DEFERRED = "deferred"  # it will run again after a backoff
    BLOCKED = "blocked"  # its task waits for a person
    CANCELLED = "cancelled"  # stopped before it ended; nothing was committed
    RESTART = "restart"  # a self deploy merged: the service restarts and completes it


class Step(Protocol):
    """A job's work done by a layer above jobs (the self-hosting layer's deploy of the
    service's own code): a JobEnd when it settled the job, or an outcome for the ordinary
    path (a verdict, or a tool error to defer)."""

    def __call__(
        self, ctx: JobContext, job: Job, task: Task, repo: Repo, request: RunnerRequest
    ) -> RunnerOutcome | JobEnd: ...


# Which jobs a layer above takes over, and with which step; handed in by the scheduler, so
# that jobs never import those layers and hold no branch of theirs.
TakeOver = Callable[[Job, Repo], Step | None]


@dataclass
class HandOff:
    """The claim a job's verdict makes for the slot the job frees, in the verdict's own
    transaction (`Store.finish_job`): the scheduler runs `job` next in that slot."""

    claimant: Claimant
    asked: float = 0.0  # time.monotonic() when the claim was asked for (its lease's start)
    made: bool = False  # a verdict committed with the claim (which may have found nothing)
    job: Job | None = None


@dataclass(frozen=True)
class JobContext:
    """What a running job needs: the store, the settings, and its way to be stopped."""

    store: Store
    settings: Settings
    cancel: CancelToken
    worker_id: str
    secrets: tuple[str, ...] = ()
    # Set only in `orch serve`, the one process that can restart on new code.
    take_over: TakeOver | None = None
    # Set by the scheduler when the job's slot may run another job after this one.
    hand_off: HandOff | None = None
    # Set by the scheduler: where the housekeeping after a verdict runs (a done task's
    # worktree removed), off the path of the next job in the slot. None: at once.
    chores: Executor | None = None

    def later(self, chore: Callable[[], None]) -> None:
        """Run `chore` after this job, in `chores` when there are any; a failure is logged,
        never fatal to the job or the worker."""
        if self.chores is None:
            _logged(chore)
        else:
            self.chores.submit(_logged, chore)

    def marker(self, job: Job) -> str:
        """Tags every process of this job attempt, so that recovery can find them all."""
        return f"{self.worker_id}.{job.id}.{job.attempt}"

    def log_path(self, job: Job, producer: str) -> Path:
        """Where this attempt's output goes."""
        folder = layout.log_dir(self.settings.home, job.task_id)
        return folder / f"{job.id}-{job.attempt}-{producer}.log"

    def on_start(self, job: Job) -> Callable[[Started], None]:
        """A callback that records the started process on the job."""

        def record(started: Started) -> None:
            self.store.record_process(
                job.id, job.attempt, started.pid, started.create_time, started.marker
            )

        return record


def _logged(chore: Callable[[], None]) -> None:
    try:
        chore()
    except Exception:
        log.exception("housekeeping after a job failed; orch gc tidies what it left")


def rules(settings: Settings) -> Rules:
    """The limits a verdict's move obeys, from the settings."""
    return Rules(settings.max_dev_retries, settings.max_retests)


def commit_verdict(
    ctx: JobContext,
    job: Job,
    task: Task,
    repo: Repo,
    producer: Producer,
    name: str,
    text: str,
    metrics: JobMetrics,
    extra_alert: tuple[str, str] | None = None,
) -> JobEnd:
    """Hand an artifact to its stage's gate and commit the verdict and the move it makes."""
    judged = judge(
        job.stage, text, job.round, rules(ctx.settings), repo.skip_stages, pipeline=task.pipeline
    )
    status = judged.gate.status
    if status in (GateStatus.RETEST, GateStatus.FAILED):
        # Only a failure or a re-test needs the counts behind its move (read only then, off
        # the path of a passing verdict): the round's re-tests, the retry's budget round.
        retests = 0
        if status is GateStatus.RETEST:
            events = ctx.store.events(job.task_id)
            retests = sum(1 for e in events if (e.round, e.from_stage, e.verdict) == (
                job.round, job.stage, "RETEST"))  # fmt: skip
        budget_round = task.budget_round  # a retry needs a failed task: none runs
        judged = judge(
            job.stage,
            text,
            job.round,
            rules(ctx.settings),
            repo.skip_stages,
            retests,
            budget_round,
            task.pipeline,
        )
    metrics = replace(metrics, outcome="verdict")
    verdict = Verdict.of(job, producer, name, text, judged, metrics, extra_alert=extra_alert)
    hand_off = ctx.hand_off
    if hand_off is None:
        ctx.store.finish_job(verdict)
    else:
        hand_off.asked = time.monotonic()
        hand_off.job = ctx.store.finish_job(verdict, hand_off.claimant)
        hand_off.made = True
    move = judged.move
    log.info(
        "task %s: %s %s by %s -> %s (round %d)",
        task.id,
        job.stage,
        judged.gate.verdict,
        producer,
        move.event_to,
        move.round,
    )
    if move.state is TaskState.DONE:  # its worktree goes, off the next job's path
        ctx.later(functools.partial(checkout.retire_quietly, ctx.settings.home, repo, task))
    return JobEnd.VERDICT
