"""Where a gate verdict takes a task: the pure decision behind every stage move."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from orchestrator.pipeline.gates import GateResult, GateStatus, gate_of
from orchestrator.pipeline.pipelines import BUILT_IN, Pipeline
from orchestrator.pipeline.stages import Outcome, Stage, StageKind, TaskState


@dataclass(frozen=True)
class Transition:
    """The result of a verdict: the task's new stage, state and round, and what to record."""

    stage: str  # the task's stage afterwards; a finished or blocked task keeps its last one
    state: TaskState
    round: int
    event_to: str  # `to_stage` of the event: a stage, or "done", "failed", "blocked"
    alert: str | None = None  # set when a person should hear about it
    rollback: bool = False  # back to development: the failing artifact becomes feedback


def next_stage(after: str, skipped: Set[str], pipeline: Pipeline = BUILT_IN) -> str | None:
    """The stage that follows `after`, skipping switched-off stages; None when the task is done."""
    return pipeline.next_stage(after, skipped)


def decide_transition(
    stage: str,
    gate: GateResult,
    round: int,
    max_dev_retries: int,
    skipped: Set[str] = frozenset(),
    retests: int = 0,
    max_retests: int = 5,
    budget_round: int = 1,
    pipeline: Pipeline = BUILT_IN,
) -> Transition:
    """Decide the move a gate verdict makes, by the table, the skips and the retry limit.

    `retests` is how many times this round already went back to testing (RETEST): a re-test
    is code only and costs no round, but a base that never stops moving must end somewhere.
    `budget_round` is the round the returns to development count from: 1, or the round a
    person's retry started (`orch task retry` grants a fresh budget). A task that passes
    into an approval stage waits there, blocked, for a person: no job runs meanwhile.
    """
    spec = pipeline.spec(stage)
    if gate.status is GateStatus.RETEST:
        if retests >= max_retests:
            return Transition(
                stage,
                TaskState.BLOCKED,
                round,
                "blocked",
                alert=(
                    f"round {round} was tested {retests + 1} times and the default branch or "
                    f"the task branch moved each time before the merge (ORCH_MAX_RETESTS="
                    f"{max_retests}): too much churn to ship what was tested; a person must look"
                ),
            )
        return Transition(Stage.TESTING, TaskState.ACTIVE, round, Stage.TESTING.value)
    if gate.status is GateStatus.INVALID:
        return Transition(
            stage,
            TaskState.BLOCKED,
            round,
            "blocked",
            alert=f"{spec.artifact} has no valid verdict ({gate.reason}); a person must look",
        )
    if gate.status is GateStatus.PASSED:
        following = pipeline.next_stage(stage, skipped)
        if following is None:
            return Transition(stage, TaskState.DONE, round, "done")
        if pipeline.spec(following).kind is StageKind.APPROVAL:
            return Transition(
                following,
                TaskState.BLOCKED,
                round,
                following,
                alert=f"{following} waits for a person's approval (orch task approve, or reject)",
            )
        return Transition(following, TaskState.ACTIVE, round, following)

    if spec.on_fail is Outcome.ROLLBACK:
        returns_so_far = round - budget_round
        if returns_so_far >= max_dev_retries:
            since = f" since its retry in round {budget_round}" if budget_round > 1 else ""
            return Transition(
                stage,
                TaskState.FAILED,
                round,
                "failed",
                alert=(
                    f"{stage} failed in round {round} ({gate.reason}) and the task has used "
                    f"all {max_dev_retries} returns to development{since} "
                    "(ORCH_MAX_DEV_RETRIES)"
                ),
            )
        return Transition(
            Stage.DEVELOPMENT, TaskState.ACTIVE, round + 1, Stage.DEVELOPMENT.value, rollback=True
        )
    if spec.on_fail is Outcome.FAILED:
        return Transition(
            stage, TaskState.FAILED, round, "failed", alert=f"{stage} failed: {gate.reason}"
        )
    return Transition(
        stage, TaskState.BLOCKED, round, "blocked", alert=f"{stage} blocked: {gate.reason}"
    )


@dataclass(frozen=True)
class Rules:
    """The limits a verdict's move obeys (from the settings)."""

    max_dev_retries: int = 3
    max_retests: int = 5


@dataclass(frozen=True)
class Judgement:
    """An artifact judged: what its gate read, the move it makes, the kind of its alert."""

    gate: GateResult
    move: Transition
    alert_kind: str


def judge(
    stage: str,
    text: str | None,
    round: int,
    rules: Rules,
    skipped: Set[str] = frozenset(),
    retests: int = 0,
    budget_round: int = 1,
    pipeline: Pipeline = BUILT_IN,
) -> Judgement:
    """The one verdict path: the stage's gate reads the artifact and the table decides the
    move. Every producer's artifact goes through it: an agent's, a runner's, a self deploy's
    after its restart, a person's."""
    spec = pipeline.spec(stage)
    gate = gate_of(spec)(text)
    move = decide_transition(
        stage,
        gate,
        round,
        rules.max_dev_retries,
        skipped,
        retests,
        rules.max_retests,
        budget_round,
        pipeline,
    )
    return Judgement(gate, move, alert_kind(spec.on_fail, gate, move))


def alert_kind(on_fail: Outcome, gate: GateResult, move: Transition) -> str:
    """What kind of alert a verdict raises, when it raises one."""
    if gate.status is GateStatus.INVALID:
        return "invalid_verdict"
    if move.state is TaskState.FAILED:
        return "retry_limit" if on_fail is Outcome.ROLLBACK else "task_failed"
    if move.state is TaskState.BLOCKED and gate.passed:
        return "approval"  # passed into an approval stage
    return "task_blocked"
