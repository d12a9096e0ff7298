"""What ships is what was tested: the RETEST verdict, its move, and the commits it compares."""

from __future__ import annotations

import pytest

from orchestrator.pipeline.gates import GateStatus, check_deploy_status
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.pipeline.transitions import decide_transition
from orchestrator.pipeline.verdicts import Judged
from orchestrator.runners.deploy_finalizer import why_retest

TESTED, BASE, OTHER = "a" * 40, "b" * 40, "c" * 40


def test_deploy_status_retest_is_neither_a_pass_nor_a_failure() -> None:
    gate = check_deploy_status("deploy_status: RETEST\n")
    assert (gate.status, gate.verdict, gate.passed) == (GateStatus.RETEST, "RETEST", False)
    assert check_deploy_status("deploy_status: retest  \n").status is GateStatus.RETEST


def test_a_retest_conflicting_with_another_value_is_invalid() -> None:
    gate = check_deploy_status("deploy_status: RETEST\ndeploy_status: DEPLOYED\n")
    assert gate.status is GateStatus.INVALID


def test_a_retest_goes_back_to_testing_in_the_same_round_with_no_alert() -> None:
    gate = check_deploy_status("deploy_status: RETEST\n")
    move = decide_transition(Stage.DEPLOY, gate, 2, max_dev_retries=3, retests=4, max_retests=5)
    assert (move.stage, move.state, move.round, move.event_to) == (
        Stage.TESTING,
        TaskState.ACTIVE,
        2,
        "testing",
    )
    assert move.alert is None and not move.rollback


def test_retests_past_the_limit_block_the_task_naming_the_churn() -> None:
    gate = check_deploy_status("deploy_status: RETEST\n")
    move = decide_transition(Stage.DEPLOY, gate, 1, max_dev_retries=3, retests=5, max_retests=5)
    assert (move.stage, move.state) == (Stage.DEPLOY, TaskState.BLOCKED)
    assert move.alert is not None and "ORCH_MAX_RETESTS=5" in move.alert
    assert "tested 6 times" in move.alert


def test_judged_reads_both_commit_lines_and_nothing_less() -> None:
    text = f"result: PASS\ntested_commit: {TESTED.upper()}\nbase_commit: {BASE}\n"
    assert Judged.read(text) == Judged(TESTED, BASE)
    assert Judged.read(f"tested_commit: {TESTED}\n") is None
    assert Judged.read(f"tested_commit: {TESTED[:12]}\nbase_commit: {BASE}\n") is None
    assert Judged.read(f"tested_commit: -\nbase_commit: {BASE}\n") is None
    assert Judged(TESTED, BASE).lines() == [f"tested_commit: {TESTED}", f"base_commit: {BASE}"]


def test_judged_carries_the_tested_tree_when_the_report_names_one() -> None:
    judged = Judged(TESTED, BASE, OTHER)
    assert Judged.read("\n".join(judged.lines())) == judged
    assert judged.lines()[-1] == f"tested_tree: {OTHER}"
    malformed = f"tested_commit: {TESTED}\nbase_commit: {BASE}\ntested_tree: abc\n"
    assert Judged.read(malformed) == Judged(TESTED, BASE)


@pytest.mark.parametrize(
    ("base_now", "tip_moved", "expected"),
    [
        (OTHER, False, "main moved from bbbbbbbbbbbb to cccccccccccc"),
        (BASE, True, "branch moved after it was tested (at aaaaaaaaaaaa)"),
        (OTHER, True, "branch moved"),  # the branch is named first: it is the task's own
        (BASE, False, "the tasks ahead in the merge queue"),  # speculation that did not land
    ],
)
def test_why_retest_names_what_moved(base_now: str, tip_moved: bool, expected: str) -> None:
    assert expected in why_retest(Judged(TESTED, BASE), base_now, tip_moved, "main")
