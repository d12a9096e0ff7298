"""A person's moves, decided by plain values: the budget a retry grants, the verdict lines a
person's approval or rejection writes, and which blocked stages wait for a person at all."""

from datetime import UTC, datetime

import pytest

from orchestrator.control import waits_for_person
from orchestrator.pipeline.gates import GateResult, GateStatus, run_gate
from orchestrator.pipeline.stages import STAGE_TRANSITIONS, Stage, TaskState
from orchestrator.pipeline.transitions import decide_transition
from orchestrator.settings import load_settings
from orchestrator.store import Repo, Task

S = Stage
FAILED = GateResult(GateStatus.FAILED, "NO", "the verdict failed")
NOW = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(("budget_round", "retries"), [(3, 0), (5, 1), (5, 3)])
def test_a_retried_task_counts_its_returns_from_the_retry(budget_round, retries):
    round = budget_round
    for _ in range(retries):  # the fresh budget: as many returns as a new task gets
        move = decide_transition(S.TESTING, FAILED, round, retries, budget_round=budget_round)
        assert (move.state, move.round) == (TaskState.ACTIVE, round + 1)
        round = move.round
    move = decide_transition(S.TESTING, FAILED, round, retries, budget_round=budget_round)
    assert move.state is TaskState.FAILED
    assert move.alert is not None
    assert f"since its retry in round {budget_round}" in move.alert


@pytest.mark.parametrize("stage", list(Stage))
def test_each_stages_pass_and_fail_lines_are_what_its_gate_reads(stage):
    spec = STAGE_TRANSITIONS[stage]
    passed = run_gate(stage, "\n".join(spec.pass_lines) + "\n")
    failed = run_gate(stage, "\n".join(spec.fail_lines) + "\n")
    assert (passed.status, failed.status) == (GateStatus.PASSED, GateStatus.FAILED)
    assert spec.verdict_keys == tuple(line.split(":")[0] for line in spec.pass_lines)


def _task(stage: Stage, state: TaskState = TaskState.BLOCKED) -> Task:
    return Task(
        "abcd1234", "app", "t", "", stage, state, 1, "orch/abcd1234", "/wt", None, None, None,
        NOW, NOW,
    )  # fmt: skip


REPO = Repo(
    1, "app", "/srv/app", "main", "tests", None, None, "make deploy", None, None, frozenset(),
    False, NOW,
)  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "overrides", "waits"),
    [
        (S.DEPLOY, {"deploy_finalizer_enabled": False}, True),
        (S.DEPLOY, {"deploy_finalizer_repos": "other"}, True),
        (S.DEPLOY, {}, False),  # the finalizer produces it: fix the cause, then resume
        (S.POST_DEPLOY, {"post_deploy_monitor_enabled": False}, True),
        (S.TESTING, {"test_runner_enabled": False}, False),  # the LLM tester is the fallback
        (S.ANALYSIS, {}, False),
    ],
)
def test_only_a_blocked_stage_nothing_else_can_produce_waits_for_a_person(stage, overrides, waits):
    settings = load_settings(**overrides)
    assert waits_for_person(_task(stage), REPO, settings) is waits
    assert not waits_for_person(_task(stage, TaskState.ACTIVE), REPO, settings)
