"""judge(): the one verdict path every producer's artifact takes (agent, runner, a self deploy
after its restart, a person)."""

import pytest

from orchestrator.pipeline.gates import GateStatus
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.pipeline.transitions import Rules, judge

S = Stage


@pytest.mark.parametrize(
    ("stage", "text", "round", "status", "state", "to", "kind"),
    [
        (S.REVIEW, "review_verdict: APPROVED\n", 1, GateStatus.PASSED, TaskState.ACTIVE,
         "testing", "task_blocked"),
        (S.REVIEW, "review_verdict: CHANGES_REQUESTED\n", 1, GateStatus.FAILED,
         TaskState.ACTIVE, "development", "task_blocked"),
        (S.TESTING, "result: FAIL\n", 4, GateStatus.FAILED, TaskState.FAILED, "failed",
         "retry_limit"),
        (S.POST_DEPLOY, "monitor_status: UNHEALTHY\n", 1, GateStatus.FAILED, TaskState.FAILED,
         "failed", "task_failed"),
        (S.ANALYSIS, "no verdict here\n", 1, GateStatus.INVALID, TaskState.BLOCKED, "blocked",
         "invalid_verdict"),
        (S.DEPLOY, "deploy_status: RETEST\n", 2, GateStatus.RETEST, TaskState.ACTIVE,
         "testing", "task_blocked"),
    ],
)  # fmt: skip
def test_an_artifact_is_judged_by_its_gate_and_the_table(
    stage, text, round, status, state, to, kind
):
    judged = judge(stage, text, round, Rules(max_dev_retries=3))
    assert (judged.gate.status, judged.move.state, judged.move.event_to) == (status, state, to)
    assert judged.alert_kind == kind


def test_the_rules_and_the_retry_round_bound_the_returns():
    text = "result: FAIL\n"
    assert judge(S.TESTING, text, 1, Rules(max_dev_retries=0)).move.state is TaskState.FAILED
    fresh = judge(S.TESTING, text, 5, Rules(max_dev_retries=1), budget_round=5)
    assert (fresh.move.state, fresh.move.round) == (TaskState.ACTIVE, 6)
    churn = judge(S.DEPLOY, "deploy_status: RETEST\n", 1, Rules(max_retests=2), retests=2)
    assert churn.move.state is TaskState.BLOCKED
