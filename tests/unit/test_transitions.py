"""Stage moves (SPEC section 2): the table, skipped stages, rounds and the retry limit."""

import re

import pytest

from orchestrator.errors import InvalidName
from orchestrator.pipeline.gates import GateResult, GateStatus, run_gate
from orchestrator.pipeline.names import check_artifact_name, check_repo_name, check_task_id
from orchestrator.pipeline.stages import (
    OPTIONAL_STAGES,
    STAGE_ORDER,
    STAGE_TRANSITIONS,
    Outcome,
    Producer,
    Stage,
    TaskState,
    format_stage_list,
    parse_stage_list,
)
from orchestrator.pipeline.transitions import decide_transition, next_stage

S = Stage
PASSED = GateResult(GateStatus.PASSED, "OK", "the verdict passed")
FAILED = GateResult(GateStatus.FAILED, "NO", "the verdict failed")
INVALID = GateResult(GateStatus.INVALID, "INVALID", "no verdict_key: line")
DEFAULT_RETRIES = 3

# The SPEC section 2 table: stage, artifact, pass ->, fail ->, can a repo switch it off.
SPEC_TABLE = [
    (S.ANALYSIS, "02-analysis.md", S.DESIGN, "blocked", False),
    (S.DESIGN, "05-design.md", S.DEVELOPMENT, "blocked", True),
    (S.DEVELOPMENT, "10-development.md", S.REVIEW, "blocked", False),
    (S.REVIEW, "11-code-review.md", S.TESTING, "development", True),
    (S.TESTING, "13-test-report.md", S.DEPLOY_STAGING, "development", False),
    (S.DEPLOY_STAGING, "15-staging-log.md", S.DEPLOY, "development", True),
    (S.DEPLOY, "16-deploy-log.md", S.POST_DEPLOY, "blocked", True),
    (S.POST_DEPLOY, "17-monitor-report.md", None, "failed", True),
]
# SPEC section 2's table as the SPEC writes it; the producer and verdict-key columns are read
# from this text, so that a change of either side shows up as a difference here.
SPEC_SECTION_2 = """
| analysis | analyst (LLM) | 02-analysis.md | analysis_status: READY or BLOCKED | design | blocked |
| design | architect (LLM) | 05-design.md | design_status: READY or BLOCKED | development | blocked |
| development | developer (LLM) | 10-development.md | dev_status: DONE or BLOCKED | review | blocked |
| review | reviewer (LLM) | 11-code-review.md | review_verdict: APPROVED or CHANGES_REQUESTED | testing | development |
| testing | test-runner (deterministic; LLM tester as fallback) | 13-test-report.md | result / status / tests_failed (three fields) | deploy-staging | development |
| deploy-staging | staging-runner (deterministic; LLM deployer as fallback) | 15-staging-log.md | staging_status: PASSED or FAILED | deploy | development |
| deploy | deploy-finalizer (deterministic only) | 16-deploy-log.md | deploy_status: DEPLOYED or FAILED | post-deploy | blocked |
| post-deploy | post-deploy-monitor (deterministic only) | 17-monitor-report.md | monitor_status: HEALTHY, SKIPPED or UNHEALTHY | done | failed |
"""  # noqa: E501
SPEC_ROWS = {
    Stage(cells[0]): cells
    for line in SPEC_SECTION_2.strip().splitlines()
    for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
}
PRODUCER = re.compile(
    r"(?P<name>[a-z-]+) \((?:(?P<llm>LLM)|deterministic only"
    r"|deterministic; LLM (?P<fallback>[a-z]+) as fallback)\)"
)


def spec_producers(cell: str) -> tuple[Producer | None, Producer | None]:
    """The (LLM role, deterministic runner) a producer cell names."""
    found = PRODUCER.fullmatch(cell)
    assert found is not None, cell
    name, fallback = Producer(found["name"]), found["fallback"]
    if found["llm"]:
        return name, None
    return (Producer(fallback) if fallback else None), name


def spec_verdicts(cell: str) -> tuple[tuple[str, ...], list[str]]:
    """The keys a verdict cell names, and the values it lists for a single key."""
    if cell.endswith("(three fields)"):
        return tuple(cell.removesuffix("(three fields)").strip().split(" / ")), []
    key, values = cell.split(": ")
    return (key,), re.split(r", | or ", values)


ADVANCING = [(stage, on_pass) for stage, _, on_pass, _, _ in SPEC_TABLE if on_pass]
BLOCKING = [stage for stage, _, _, on_fail, _ in SPEC_TABLE if on_fail == "blocked"]
ROLLING_BACK = [stage for stage, _, _, on_fail, _ in SPEC_TABLE if on_fail == "development"]


def decide(stage, gate, round=1, max_dev_retries=DEFAULT_RETRIES, skipped=frozenset()):
    return decide_transition(stage, gate, round, max_dev_retries, skipped)


@pytest.mark.parametrize(("stage", "artifact", "on_pass", "on_fail", "optional"), SPEC_TABLE)
def test_stage_table_is_the_spec_table(stage, artifact, on_pass, on_fail, optional):
    spec = STAGE_TRANSITIONS[stage]
    assert (spec.stage, spec.artifact, spec.on_pass) == (stage, artifact, on_pass)
    assert spec.on_fail == Outcome(on_fail)
    assert spec.optional is optional
    _, producer, spec_artifact, verdicts, spec_pass, spec_fail = SPEC_ROWS[stage]
    assert (spec_artifact, spec_fail) == (artifact, on_fail)
    assert spec_pass == (on_pass.value if on_pass else "done")
    assert (spec.llm_role, spec.runner) == spec_producers(producer)
    keys, values = spec_verdicts(verdicts)
    assert spec.verdict_keys == keys
    for value in values:  # the last value listed fails the gate; the ones before pass it
        expected = GateStatus.FAILED if value == values[-1] else GateStatus.PASSED
        assert run_gate(stage, f"{keys[0]}: {value}").status is expected, value


def test_the_spec_rows_cover_every_stage():
    assert list(SPEC_ROWS) == list(STAGE_ORDER)


def test_stages_run_in_the_spec_order():
    assert [stage for stage, *_ in SPEC_TABLE] == list(STAGE_ORDER) == list(STAGE_TRANSITIONS)


@pytest.mark.parametrize(("stage", "following"), ADVANCING)
@pytest.mark.parametrize("round", [1, 2, 4])
def test_pass_moves_to_the_next_stage_in_the_same_round(stage, following, round):
    move = decide(stage, PASSED, round=round)
    assert (move.stage, move.state, move.round) == (following, TaskState.ACTIVE, round)
    assert move.event_to == following.value
    assert move.alert is None
    assert not move.rollback


def test_post_deploy_pass_finishes_the_task_keeping_its_last_stage():
    move = decide(S.POST_DEPLOY, PASSED, round=2)
    assert (move.stage, move.state, move.round, move.event_to) == (
        S.POST_DEPLOY,
        TaskState.DONE,
        2,
        "done",
    )
    assert move.alert is None


@pytest.mark.parametrize("stage", BLOCKING)
def test_fail_in_a_blocking_stage_blocks_the_task_in_that_stage_with_an_alert(stage):
    move = decide(stage, FAILED, round=2)
    assert (move.stage, move.state, move.round, move.event_to) == (
        stage,
        TaskState.BLOCKED,
        2,
        "blocked",
    )
    assert move.alert is not None
    assert "the verdict failed" in move.alert
    assert not move.rollback


@pytest.mark.parametrize("stage", ROLLING_BACK)
def test_fail_in_review_testing_or_staging_returns_to_development_in_a_new_round(stage):
    move = decide(stage, FAILED, round=1)
    assert (move.stage, move.state, move.round, move.event_to) == (
        S.DEVELOPMENT,
        TaskState.ACTIVE,
        2,
        "development",
    )
    assert move.rollback
    assert move.alert is None


def test_post_deploy_fail_fails_the_task_with_an_alert():
    move = decide(S.POST_DEPLOY, FAILED)
    assert (move.stage, move.state, move.event_to) == (S.POST_DEPLOY, TaskState.FAILED, "failed")
    assert move.alert is not None
    assert "the verdict failed" in move.alert
    assert not move.rollback


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("round", [1, 4, 9])
def test_invalid_verdict_blocks_the_task_with_an_alert_in_every_stage(stage, round):
    move = decide(stage, INVALID, round=round)
    assert (move.stage, move.state, move.round, move.event_to) == (
        stage,
        TaskState.BLOCKED,
        round,
        "blocked",
    )
    assert move.alert is not None
    assert STAGE_TRANSITIONS[stage].artifact in move.alert
    assert "no verdict_key: line" in move.alert
    assert not move.rollback


# ---------------------------------------------------------------- skipped stages


@pytest.mark.parametrize("skipped", sorted(OPTIONAL_STAGES))
def test_each_optional_stage_can_be_skipped(skipped):
    before = next(stage for stage, on_pass in ADVANCING if on_pass is skipped)
    after = STAGE_TRANSITIONS[skipped].on_pass
    move = decide(before, PASSED, skipped={skipped})
    if after is None:
        assert (move.state, move.event_to, move.stage) == (TaskState.DONE, "done", before)
    else:
        assert (move.state, move.event_to, move.stage) == (TaskState.ACTIVE, after.value, after)


@pytest.mark.parametrize(
    ("skipped", "stage", "following"),
    [
        ({S.REVIEW, S.DEPLOY_STAGING}, S.DEVELOPMENT, S.TESTING),
        ({S.REVIEW, S.DEPLOY_STAGING}, S.TESTING, S.DEPLOY),
        ({S.DEPLOY_STAGING, S.DEPLOY}, S.TESTING, S.POST_DEPLOY),
        ({S.DESIGN, S.REVIEW}, S.ANALYSIS, S.DEVELOPMENT),
        ({S.DEPLOY_STAGING, S.DEPLOY, S.POST_DEPLOY}, S.TESTING, None),
        (OPTIONAL_STAGES, S.ANALYSIS, S.DEVELOPMENT),
        (OPTIONAL_STAGES, S.DEVELOPMENT, S.TESTING),
        (OPTIONAL_STAGES, S.TESTING, None),
    ],
)
def test_several_skipped_stages_are_passed_over(skipped, stage, following):
    assert next_stage(stage, skipped) == following
    move = decide(stage, PASSED, skipped=skipped)
    assert move.state is (TaskState.DONE if following is None else TaskState.ACTIVE)
    assert move.event_to == ("done" if following is None else following.value)


def test_with_every_optional_stage_skipped_testing_pass_finishes_the_task():
    move = decide(S.TESTING, PASSED, round=3, skipped=OPTIONAL_STAGES)
    assert (move.stage, move.state, move.round, move.event_to) == (
        S.TESTING,
        TaskState.DONE,
        3,
        "done",
    )


@pytest.mark.parametrize(("stage", "following"), [*ADVANCING, (S.POST_DEPLOY, None)])
def test_next_stage_without_skips_follows_the_table(stage, following):
    assert next_stage(stage, frozenset()) == following


def test_skipping_a_stage_does_not_change_where_its_failure_would_go():
    assert decide(S.TESTING, FAILED, skipped={S.REVIEW}).stage is S.DEVELOPMENT


# ---------------------------------------------------------------- rounds and retries


@pytest.mark.parametrize("stage", ROLLING_BACK)
@pytest.mark.parametrize("round", [1, 2, 3])
def test_failures_within_the_default_retry_limit_start_a_new_round(stage, round):
    move = decide(stage, FAILED, round=round)
    assert (move.stage, move.round, move.state) == (S.DEVELOPMENT, round + 1, TaskState.ACTIVE)


@pytest.mark.parametrize("stage", ROLLING_BACK)
def test_failure_in_round_4_fails_the_task_after_three_returns(stage):
    move = decide(stage, FAILED, round=4)
    assert (move.stage, move.state, move.round, move.event_to) == (
        stage,
        TaskState.FAILED,
        4,
        "failed",
    )
    assert not move.rollback
    assert move.alert is not None
    assert "ORCH_MAX_DEV_RETRIES" in move.alert
    assert "the verdict failed" in move.alert


@pytest.mark.parametrize("stage", ROLLING_BACK)
def test_zero_retries_fails_the_task_at_the_first_failure(stage):
    move = decide(stage, FAILED, round=1, max_dev_retries=0)
    assert move.state is TaskState.FAILED
    assert move.alert is not None
    assert "ORCH_MAX_DEV_RETRIES" in move.alert


@pytest.mark.parametrize(("retries", "last_round"), [(0, 1), (1, 2), (3, 4), (5, 6)])
def test_a_task_gets_at_most_one_plus_max_dev_retries_rounds(retries, last_round):
    round, stages = 1, [S.REVIEW, S.TESTING, S.DEPLOY_STAGING]
    for attempt in range(20):
        move = decide(stages[attempt % 3], FAILED, round=round, max_dev_retries=retries)
        if move.state is TaskState.FAILED:
            break
        assert move.round == round + 1
        round = move.round
    assert move.state is TaskState.FAILED
    assert round == last_round


def test_pass_in_the_last_round_still_moves_on():
    move = decide(S.TESTING, PASSED, round=4)
    assert (move.stage, move.state) == (S.DEPLOY_STAGING, TaskState.ACTIVE)


def test_retry_limit_does_not_turn_a_blocking_failure_into_a_failed_task():
    assert decide(S.ANALYSIS, FAILED, round=9).state is TaskState.BLOCKED


# ---------------------------------------------------------------- parse_stage_list


@pytest.mark.parametrize(
    ("csv", "stages"),
    [
        ("", frozenset()),
        (" , ,", frozenset()),
        ("design", {S.DESIGN}),
        ("review,deploy-staging", {S.REVIEW, S.DEPLOY_STAGING}),
        ("  Design , REVIEW ,", {S.DESIGN, S.REVIEW}),
        ("deploy,deploy,post-deploy", {S.DEPLOY, S.POST_DEPLOY}),
        ("design,review,deploy-staging,deploy,post-deploy", OPTIONAL_STAGES),
    ],
)
def test_stage_list_is_parsed_ignoring_case_spaces_and_empty_items(csv, stages):
    assert parse_stage_list(csv) == frozenset(stages)


def test_optional_stages_are_the_five_of_the_spec():
    assert {S.DESIGN, S.REVIEW, S.DEPLOY_STAGING, S.DEPLOY, S.POST_DEPLOY} == OPTIONAL_STAGES


@pytest.mark.parametrize("name", ["qa", "deploy_staging", "staging", "design;review", "done"])
def test_unknown_stage_in_a_stage_list_is_named_in_the_error(name):
    with pytest.raises(ValueError, match=f"unknown stage '{name}'") as error:
        parse_stage_list(f"design,{name}")
    assert "post-deploy" in str(error.value)


@pytest.mark.parametrize("stage", ["analysis", "development", "testing", "Testing"])
def test_analysis_development_and_testing_cannot_be_skipped(stage):
    with pytest.raises(ValueError, match=f"stage {stage.lower()} cannot be switched off") as error:
        parse_stage_list(f"review,{stage}")
    assert "design, review, deploy-staging, deploy, post-deploy" in str(error.value)


def test_stage_list_is_written_back_in_pipeline_order():
    assert format_stage_list(parse_stage_list("post-deploy, design ,review")) == (
        "design,review,post-deploy"
    )


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("value", ["abcd", "a1b2c3d4", "0000", "z" * 40])
def test_well_formed_task_id_is_accepted(value):
    assert check_task_id(value) == value


BAD_TASK_IDS = ["", "..", "../x", "a/b", "abcd/../x", "ABCD1234", "Abcd", "abc", "z" * 41]
BAD_TASK_IDS += ["abcd\n", "abcd-1234", "abc d", "abcd.", "/abcd", "abcd\\x", "abcé"]


@pytest.mark.parametrize("value", BAD_TASK_IDS)
def test_path_like_or_malformed_task_id_is_rejected(value):
    with pytest.raises(InvalidName, match="invalid task id"):
        check_task_id(value)


@pytest.mark.parametrize("value", ["orchestrator", "my-repo.v2", "A_Repo", "x", "r" * 64])
def test_well_formed_repo_name_is_accepted(value):
    assert check_repo_name(value) == value


BAD_REPO_NAMES = ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "_x", "a..b", "repo."]
BAD_REPO_NAMES += ["repo.lock", "r" * 65, "repo\n", "my repo", "repo/..", "répo"]


@pytest.mark.parametrize("value", BAD_REPO_NAMES)
def test_path_like_or_malformed_repo_name_is_rejected(value):
    with pytest.raises(InvalidName, match="invalid repo name"):
        check_repo_name(value)


@pytest.mark.parametrize("value", [spec.artifact for spec in STAGE_TRANSITIONS.values()])
def test_every_stage_artifact_name_is_a_valid_artifact_name(value):
    assert check_artifact_name(value) == value


BAD_ARTIFACT_NAMES = ["", "..", "../13-x.md", "a/13-x.md", "13-x.md/..", "13-Test.md", "1-x.md"]
BAD_ARTIFACT_NAMES += ["13-x.txt", "13-.md", "13-x.md\n", "13-x.MD", "13_x.md", "13-x", "123-x.md"]
BAD_ARTIFACT_NAMES += ["13-x..md", "13-x.y.md", "13-x.md.md", "13- x.md"]


@pytest.mark.parametrize("value", BAD_ARTIFACT_NAMES)
def test_path_like_or_malformed_artifact_name_is_rejected(value):
    with pytest.raises(InvalidName, match="invalid artifact name"):
        check_artifact_name(value)
