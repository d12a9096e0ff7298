"""A repo's own pipeline (`orch.toml`): what `read_pipeline` accepts, what it refuses and why,
and how the moves, gates and progress strip follow a declared pipeline."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.pipeline.gates import GateStatus, gate_of
from orchestrator.pipeline.pipelines import BUILT_IN, Pipeline, PipelineError, read_pipeline
from orchestrator.pipeline.progress import StageMark, StageStatus, stage_progress
from orchestrator.pipeline.stages import STAGE_ORDER, STAGE_TRANSITIONS, Outcome, Stage, TaskState
from orchestrator.pipeline.transitions import Judgement, Rules, Transition, decide_transition, judge


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a string or a list of strings: JSON's escapes are TOML's


def stage(name: object = None, **fields: object) -> str:
    """One [[stage]] table, rendered as TOML."""
    items = ({"name": name} if name is not None else {}) | fields
    return "[[stage]]\n" + "".join(f"{key} = {_value(v)}\n" for key, v in items.items()) + "\n"


def check(name: str = "lint", **fields: object) -> str:
    return stage(name, **({"kind": "check", "command": ["make", name]} | fields))


DEV = stage("development")
EXAMPLE = (
    DEV
    + check(command=["ruff", "check", "."], timeout_s=300, on_fail="development")
    + stage("testing")
    + stage("approve", kind="approval")
    + stage("deploy")
)
PIPE = read_pipeline(EXAMPLE)
RULES = Rules()


def test_no_file_is_the_built_in_pipeline() -> None:
    pipeline = read_pipeline(None)
    assert pipeline is BUILT_IN
    assert pipeline.order == STAGE_ORDER
    assert not pipeline.declared
    assert pipeline.to_json() is None
    assert Pipeline.from_json(None) is BUILT_IN
    assert [spec.on_pass for spec in pipeline] == [*STAGE_ORDER[1:], None]


def test_the_example_file_parses() -> None:
    assert PIPE.declared
    assert PIPE.order == ("development", "lint", "testing", "approve", "deploy")
    assert PIPE.first == "development"
    assert [s.kind for s in PIPE] == ["built-in", "check", "built-in", "approval", "built-in"]
    assert [spec.on_pass for spec in PIPE] == ["lint", "testing", "approve", "deploy", None]
    artifacts = "10-development.md 11-lint.md 13-test-report.md 14-approve.md 16-deploy-log.md"
    assert [spec.artifact for spec in PIPE] == artifacts.split()
    lint, approve = PIPE.spec("lint"), PIPE.spec("approve")
    assert lint.command == ("ruff", "check", ".")
    assert lint.timeout_s == 300.0
    assert lint.on_fail is Outcome.ROLLBACK
    assert lint.verdict_keys == ("check_status",)
    assert approve.verdict_keys == ("approval_status",)
    assert approve.on_fail is Outcome.ROLLBACK  # the default
    assert approve.command == () and approve.timeout_s is None
    # A built-in stage keeps its row, but its on_pass follows the declared order.
    testing = PIPE.spec("testing")
    assert testing.artifact == STAGE_TRANSITIONS[Stage.TESTING].artifact
    assert testing.verdict_keys == STAGE_TRANSITIONS[Stage.TESTING].verdict_keys
    assert "review" not in PIPE and "lint" in PIPE
    assert PIPE.index("approve") == 3
    with pytest.raises(KeyError):
        PIPE.spec("review")


def test_the_stored_form_round_trips() -> None:
    stored = PIPE.to_json()
    assert stored is not None
    assert json.loads(stored)[1] == {
        "name": "lint",
        "kind": "check",
        "on_fail": "development",
        "command": ["ruff", "check", "."],
        "timeout_s": 300.0,
    }
    assert Pipeline.from_json(stored) == PIPE


def test_a_check_stage_gate_reads_check_status() -> None:
    gate = gate_of(PIPE.spec("lint"))
    assert gate("check_status: PASS\n").status is GateStatus.PASSED
    assert gate("check_status: FAIL\n").status is GateStatus.FAILED
    assert gate("result: PASS\n").status is GateStatus.INVALID
    assert gate(None).status is GateStatus.INVALID
    approval = gate_of(PIPE.spec("approve"))
    assert approval("approval_status: APPROVED\n").status is GateStatus.PASSED
    assert approval("approval_status: REJECTED\n").status is GateStatus.FAILED


BLOCKED_LINT = check(on_fail="blocked")
SHIPS = DEV + stage("testing") + stage("deploy")
FULL = SHIPS + stage("post-deploy")
BAD_FILES = [
    ("[[stage]\nname = 1", "not valid TOML"),
    ('title = "x"\n' + DEV, "unknown key 'title' (expected [[stage]])"),
    ("", "no [[stage]]"),
    ("stage = []\n", "no [[stage]]"),
    ('stage = ["development"]\n', "stage 1: expected a [[stage]] table"),
    (DEV + stage(kind="check"), "stage 2: no name"),
    (stage(5), "stage 1: no name"),
    (DEV + stage("linting"), "'linting': not a built-in stage"),
    (DEV + stage("lint", kind="script"), "unknown kind 'script' (expected check or approval)"),
    (DEV + check(retries=2), "'lint': unknown key 'retries' (a check stage takes command,"),
    (stage("development", on_fail="blocked"), "unknown key 'on_fail' (a built-in stage takes"),
    (DEV + stage("ok", kind="approval", command=["x"]), "unknown key 'command'"),
    (DEV + check(command="ruff check ."), "never a shell string"),
    (DEV + check(command=[]), "command must be a non-empty list of non-empty strings"),
    (DEV + check(command=["ruff", 1]), "command must be a non-empty list of non-empty strings"),
    (DEV + check(command=["ruff", ""]), "command must be a non-empty list of non-empty strings"),
    (DEV + stage("lint", kind="check"), "command must be a non-empty list"),
    (DEV + check(timeout_s=0), "timeout_s must be above 0 and at most 86400"),
    (DEV + check(timeout_s=-5), "timeout_s must be above 0 and at most 86400"),
    (DEV + check(timeout_s=86_401), "timeout_s must be above 0 and at most 86400"),
    (DEV + check(timeout_s=True), "timeout_s must be a number of seconds"),
    (DEV + check(timeout_s="300"), "timeout_s must be a number of seconds"),
    (DEV + check(on_fail="retry"), "on_fail 'retry' is not development, blocked or failed"),
    (DEV + stage("ok", kind="approval", on_fail="done"), "on_fail 'done' is not development"),
    (DEV + check("testing"), "'testing': a check stage needs a name of its own"),
    (DEV + stage("done", kind="approval"), "'done': a approval stage needs a name of its own"),
    (DEV + check("intake"), "'intake': a check stage needs a name of its own"),
    (DEV + check("Lint"), "'Lint': a check stage needs a name of its own"),
    (DEV + check("l" * 41), "needs a name of its own"),
    (DEV + check() + check(), "'lint' is listed twice"),
    (DEV + DEV, "is listed twice"),
    (stage("testing") + DEV, "sends a failure back to development, which does not come before"),
    (DEV + stage("analysis"), "comes after development: built-in stages keep their order"),
    (DEV + stage("testing") + stage("review"), "comes after testing: built-in stages keep"),
    (DEV + stage("deploy"), "needs testing before it"),
    (DEV + stage("deploy-staging"), "needs testing before it"),
    (DEV + stage("testing") + stage("post-deploy"), "needs deploy before it"),
    (FULL + BLOCKED_LINT, "comes after post-deploy, which ends the task: it can never be reached"),
    (SHIPS + BLOCKED_LINT, "'lint' comes after deploy"),
    (SHIPS + stage("ok", kind="approval", on_fail="failed"), "'ok' comes after deploy: the"),
    (check() + DEV, "'lint' sends a failure back to development, which does not come before it"),
    (stage("ok", kind="approval") + DEV, "'ok' sends a failure back to development"),
    ("".join(check(f"c{n}", on_fail="blocked") for n in range(31)), "31 stages, more than 30"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_FILES)
def test_a_bad_file_is_refused_with_one_line_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(PipelineError) as caught:
        read_pipeline(text)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith("orch.toml: ")
    assert "\n" not in message


def test_a_check_that_blocks_or_fails_may_come_before_development() -> None:
    for word, outcome in (("blocked", Outcome.BLOCKED), ("failed", Outcome.FAILED)):
        pipeline = read_pipeline(check(on_fail=word) + DEV)
        assert pipeline.order == ("lint", "development")
        assert pipeline.spec("lint").on_fail is outcome
        assert pipeline.spec("lint").artifact == "02-lint.md"


def test_limits_are_inclusive() -> None:
    thirty = "".join(check(f"c{n}", on_fail="blocked") for n in range(30))
    assert len(read_pipeline(thirty).order) == 30
    assert read_pipeline(DEV + check(timeout_s=86_400)).spec("lint").timeout_s == 86_400.0
    assert read_pipeline(DEV + check(timeout_s=0.5)).spec("lint").timeout_s == 0.5
    assert read_pipeline(DEV + check()).spec("lint").timeout_s == 600.0  # the default
    # 11-code-review.md is the review stage's: the check's number moves on.
    assert read_pipeline(DEV + check("code-review")).specs[1].artifact == "12-code-review.md"


def test_start_is_the_first_stage_not_switched_off() -> None:
    assert PIPE.start() == "development"
    assert BUILT_IN.start({"analysis", "design"}) == "development"
    assert read_pipeline(check(on_fail="blocked") + DEV).start({"lint"}) == "development"
    with pytest.raises(PipelineError, match="every stage of the pipeline is switched off"):
        PIPE.start(set(PIPE.order))


def test_next_stage_passes_over_skipped_stages() -> None:
    assert PIPE.next_stage("development") == "lint"
    assert PIPE.next_stage("development", {"lint"}) == "testing"
    assert PIPE.next_stage("testing", {"approve"}) == "deploy"
    assert PIPE.next_stage("approve", {"deploy"}) is None
    assert PIPE.next_stage("deploy") is None
    assert BUILT_IN.next_stage("development", {"review"}) == "testing"


def _judge(stage_name: str, text: str, pipeline: Pipeline = PIPE, round_: int = 1) -> Judgement:
    return judge(stage_name, text, round_, RULES, pipeline=pipeline)


def test_moves_through_a_declared_pipeline() -> None:
    dev = _judge("development", "dev_status: DONE\n").move
    assert dev == Transition("lint", TaskState.ACTIVE, 1, "lint")
    lint = _judge("lint", "check_status: PASS\n").move
    assert lint == Transition("testing", TaskState.ACTIVE, 1, "testing")
    back = _judge("lint", "check_status: FAIL\n", round_=2).move
    assert back == Transition("development", TaskState.ACTIVE, 3, "development", rollback=True)


def test_a_check_fails_where_its_on_fail_says() -> None:
    for word, state in (("blocked", TaskState.BLOCKED), ("failed", TaskState.FAILED)):
        pipeline = read_pipeline(DEV + check(on_fail=word) + stage("testing"))
        judged = _judge("lint", "check_status: FAIL\n", pipeline)
        assert (judged.move.stage, judged.move.state, judged.move.event_to) == ("lint", state, word)
        assert not judged.move.rollback
        assert judged.move.alert is not None and "lint" in judged.move.alert
        assert judged.alert_kind == ("task_blocked" if word == "blocked" else "task_failed")


def test_passing_into_an_approval_waits_for_a_person() -> None:
    judged = _judge("testing", "result: PASS\n")
    move = judged.move
    assert (move.stage, move.state, move.event_to) == ("approve", TaskState.BLOCKED, "approve")
    assert move.alert is not None and "approve" in move.alert
    assert judged.alert_kind == "approval"
    approved = _judge("approve", "approval_status: APPROVED\n").move
    assert approved == Transition("deploy", TaskState.ACTIVE, 1, "deploy")
    rejected = _judge("approve", "approval_status: REJECTED\n", round_=2).move
    assert rejected == Transition("development", TaskState.ACTIVE, 3, "development", rollback=True)
    blocking = read_pipeline(DEV + stage("ok", kind="approval", on_fail="blocked"))
    assert _judge("ok", "approval_status: REJECTED\n", blocking).move.state is TaskState.BLOCKED
    assert _judge("ok", "approval_status: APPROVED\n", blocking).move.state is TaskState.DONE
    assert _judge("deploy", "deploy_status: DEPLOYED\n").move.state is TaskState.DONE


def test_the_built_in_pipeline_moves_as_before() -> None:
    judged = judge(Stage.REVIEW, "review_verdict: CHANGES_REQUESTED\n", 1, RULES)
    move = judged.move
    assert move == Transition(Stage.DEVELOPMENT, TaskState.ACTIVE, 2, "development", None, True)
    assert decide_transition(Stage.REVIEW, judged.gate, 1, 3) == judged.move
    passed = judge(Stage.DEVELOPMENT, "dev_status: DONE\n", 1, RULES, {"review"}).move
    assert passed == Transition(Stage.TESTING, TaskState.ACTIVE, 1, "testing")


def test_progress_follows_the_declared_order() -> None:
    P, C, N, S, B = (StageStatus.PASSED, StageStatus.CURRENT, StageStatus.PENDING,
                     StageStatus.SKIPPED, StageStatus.BLOCKED)  # fmt: skip
    assert stage_progress("testing", TaskState.ACTIVE, {"deploy"}, PIPE) == [
        StageMark(name, status) for name, status in zip(PIPE.order, (P, P, C, N, S), strict=True)
    ]
    waiting = stage_progress("approve", TaskState.BLOCKED, (), PIPE)
    assert [mark.status for mark in waiting] == [P, P, P, B, N]
    assert [m.status for m in stage_progress("deploy", TaskState.DONE, (), PIPE)] == [P] * 5


# Which built-in stage needs which before it, as the module enforces it.
NEEDS = {"deploy-staging": "testing", "deploy": "testing", "post-deploy": "deploy"}
ROLLS_BACK = {s.stage for s in STAGE_TRANSITIONS.values() if s.on_fail is Outcome.ROLLBACK}


def _valid(names: list[str], on_fails: dict[str, str]) -> bool:
    for i, name in enumerate(names):
        before = names[:i]
        if name in NEEDS and NEEDS[name] not in before:
            return False
        rolls_back = name in ROLLS_BACK or on_fails.get(name) == "development"
        if rolls_back and "development" not in before:
            return False
        if name in on_fails and ("deploy" in before or "deploy-staging" in before):
            return False
    return bool(names)


ON_FAIL = st.sampled_from(["development", "blocked", "failed"])
NAMES = [s.value for s in STAGE_ORDER]


@settings(max_examples=100, deadline=None)
@given(
    chosen=st.sets(st.sampled_from(NAMES)),
    checks=st.lists(st.tuples(st.integers(0, 9), ON_FAIL, st.integers(1, 86_400)), max_size=4),
    repair=st.booleans(),
)
def test_any_ordered_pipeline_is_read_as_written(
    chosen: set[str], checks: list[tuple[int, str, int]], repair: bool
) -> None:
    if repair:  # add what the chosen stages need, and keep the checks before staging: valid
        for _ in range(3):
            chosen |= {"development"} | {NEEDS[name] for name in chosen if name in NEEDS}
    names = [name for name in NAMES if name in chosen]
    on_fails: dict[str, str] = {}
    for n, (position, on_fail, _) in enumerate(checks):
        at = names.index("development") + 1 if "development" in names else 0
        serial = [names.index(s) for s in ("deploy-staging", "deploy") if s in names]
        end = min(serial) if repair and serial else len(names)
        names.insert(min(at + position, end), f"check-{n}")
        on_fails[f"check-{n}"] = on_fail
    timeouts = {f"check-{n}": timeout for n, (_, _, timeout) in enumerate(checks)}
    text = "".join(
        check(name, on_fail=on_fails[name], timeout_s=timeouts[name])
        if name in on_fails
        else stage(name)
        for name in names
    )
    try:
        pipeline = read_pipeline(text)
    except PipelineError as error:
        assert "\n" not in str(error)
        assert not repair and not _valid(names, on_fails), str(error)
        return
    assert _valid(names, on_fails)
    assert list(pipeline.order) == names
    assert [spec.on_pass for spec in pipeline] == [*names[1:], None]
    assert len({spec.artifact for spec in pipeline}) == len(names)
    assert Pipeline.from_json(pipeline.to_json()) == pipeline


# Defects found while writing these tests, each shown failing before its fix.


@pytest.mark.parametrize("on_fail", [["blocked"], {"a": 1}])
def test_an_unhashable_on_fail_is_refused(on_fail: object) -> None:
    value = '["blocked"]' if isinstance(on_fail, list) else "{ a = 1 }"
    text = DEV + check().replace("\n\n", f"\non_fail = {value}\n\n")
    with pytest.raises(PipelineError, match="on_fail"):
        read_pipeline(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (stage("testing") + DEV, "stage 'testing' sends"),
        (DEV + stage("analysis"), "stage 'analysis' comes after"),
        (DEV + stage("deploy"), "stage 'deploy' needs testing"),
        (DEV + DEV, "stage 'development' is listed twice"),
    ],
)
def test_a_built_in_stage_is_named_as_written(text: str, named: str) -> None:
    with pytest.raises(PipelineError) as caught:
        read_pipeline(text)
    assert named in str(caught.value) and "<Stage." not in str(caught.value)


def test_artifacts_are_numbered_after_the_stage_before_them() -> None:
    pipeline = read_pipeline(DEV + check() + stage("review") + stage("testing"))
    artifacts = [spec.artifact for spec in pipeline]
    assert artifacts == [
        "10-development.md",
        "11-lint.md",
        "11-code-review.md",
        "13-test-report.md",
    ]


def test_a_check_inside_the_serial_span_is_refused() -> None:
    text = DEV + stage("testing") + stage("deploy-staging") + check("smoke") + stage("deploy")
    with pytest.raises(PipelineError, match="outside the repo's serial gate"):
        read_pipeline(text)
