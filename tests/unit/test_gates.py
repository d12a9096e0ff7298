"""Gates (SPEC sections 2 and 3): pure functions of an artifact's text that fail closed."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.pipeline.gates import (
    GATES,
    GateStatus,
    _parse_staging_status,
    _parse_tests_verdict,
    check_staging_status,
    check_tests_passed,
    run_gate,
)
from orchestrator.pipeline.stages import STAGE_TRANSITIONS, Stage

# stage, key, passing values, failing values: the single-key rows of the SPEC section 2 table.
SINGLE_KEY_GATES = [
    (Stage.ANALYSIS, "analysis_status", ["READY"], ["BLOCKED"]),
    (Stage.DESIGN, "design_status", ["READY"], ["BLOCKED"]),
    (Stage.DEVELOPMENT, "dev_status", ["DONE"], ["BLOCKED"]),
    (Stage.REVIEW, "review_verdict", ["APPROVED"], ["CHANGES_REQUESTED"]),
    (Stage.DEPLOY_STAGING, "staging_status", ["PASSED"], ["FAILED"]),
    (Stage.DEPLOY, "deploy_status", ["DEPLOYED"], ["FAILED"]),
    (Stage.POST_DEPLOY, "monitor_status", ["HEALTHY", "SKIPPED"], ["UNHEALTHY"]),
]
PASSING = [(stage, key, value) for stage, key, ok, _ in SINGLE_KEY_GATES for value in ok]
FAILING = [(stage, key, value) for stage, key, _, bad in SINGLE_KEY_GATES for value in bad]
KEYS = [(stage, key) for stage, key, _, _ in SINGLE_KEY_GATES]


def artifact(*lines: str) -> str:
    return "\n".join(["# Artifact", "", "Some prose for people.", "", *lines, ""])


def test_every_stage_has_a_gate_and_a_row_here():
    assert set(GATES) == set(Stage)
    assert {stage for stage, _ in KEYS} | {Stage.TESTING} == set(Stage)


@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_gate_reads_the_verdict_key_of_its_stage(stage, key):
    assert STAGE_TRANSITIONS[stage].verdict_keys == (key,)


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_passes(stage, key, value):
    result = run_gate(stage, artifact(f"{key}: {value}"))
    assert result.status is GateStatus.PASSED
    assert result.passed
    assert result.verdict == value


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_in_any_case_with_spaces_passes(stage, key, value):
    assert run_gate(stage, artifact(f"{key}:   {value.lower()}  ")).verdict == value


@pytest.mark.parametrize(("stage", "key", "value"), FAILING)
def test_failing_value_fails(stage, key, value):
    result = run_gate(stage, artifact(f"{key}: {value}"))
    assert result.status is GateStatus.FAILED
    assert not result.passed
    assert result.verdict == value


@pytest.mark.parametrize("unknown", ["MAYBE", "", "PASS", "YES", "READY!", "ok"])
@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_unknown_value_is_invalid(stage, key, unknown):
    result = run_gate(stage, artifact(f"{key}: {unknown}"))
    assert result.status is GateStatus.INVALID
    assert result.verdict == "INVALID"
    assert "unknown value" in result.reason


@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_missing_key_is_invalid(stage, key):
    result = run_gate(stage, artifact("other_key: READY", f"{key.upper()}: X"))
    assert result.status is GateStatus.INVALID
    assert result.reason == f"no {key}: line"


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_hidden_in_a_fence_or_indented_is_invalid(stage, key, value):
    assert run_gate(stage, artifact("```", f"{key}: {value}", "```")).status is GateStatus.INVALID
    assert run_gate(stage, artifact(f"  {key}: {value}")).status is GateStatus.INVALID


@pytest.mark.parametrize(("stage", "key", "passing", "failing"), SINGLE_KEY_GATES)
def test_conflicting_values_are_invalid(stage, key, passing, failing):
    for other in [*failing, *passing[1:], "MAYBE"]:
        result = run_gate(stage, artifact(f"{key}: {passing[0]}", "notes", f"{key}: {other}"))
        assert result.status is GateStatus.INVALID, other
        assert "conflicting" in result.reason


@pytest.mark.parametrize(("stage", "key", "value"), PASSING + FAILING)
def test_repeated_key_with_the_same_value_counts_once(stage, key, value):
    text = artifact(f"{key}: {value}", "notes", f"{key}: {value.lower()}")
    assert run_gate(stage, text).verdict == value


@pytest.mark.parametrize("stage", list(Stage))
def test_missing_artifact_is_invalid(stage):
    result = run_gate(stage, None)
    assert result.status is GateStatus.INVALID
    assert "missing" in result.reason


# ---------------------------------------------------------------- the testing gate

ALIGNED_PASS = "result: PASS\nstatus: PASS\ntests_failed: 0"


@pytest.mark.parametrize(
    "text",
    [
        "result: PASS",
        "result: PASS\nstatus: PASS",
        "result: PASS\ntests_failed: 0",
        ALIGNED_PASS,
        "tests_failed: 0\r\nstatus: pass\r\nresult: Pass\r\n",
        "producer: test-runner\nresult: PASS\nstatus: PASS\ntests_failed: 0\n\n## 412 passed",
    ],
)
def test_tests_verdict_passes_when_result_and_every_present_field_agree(text):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.PASSED
    assert result.verdict == "PASS"


@pytest.mark.parametrize(
    ("text", "contradiction"),
    [
        ("result: FAIL", "result: FAIL"),
        ("result: FAIL\nstatus: FAIL\ntests_failed: 3", "result: FAIL"),
        ("result: FAIL\nstatus: PASS\ntests_failed: 0", "result: FAIL"),
        ("result: PASS\nstatus: FAIL", "status: FAIL"),
        ("result: PASS\ntests_failed: 2", "tests_failed: 2"),
        ("result: PASS\nstatus: PASS\ntests_failed: 1", "tests_failed: 1"),
        ("result: PASS\nstatus: FAIL\ntests_failed: 0", "status: FAIL"),
    ],
)
def test_tests_verdict_fails_on_fail_or_misaligned_fields(text, contradiction):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.FAILED
    assert result.verdict == "FAIL"
    assert contradiction in result.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("status: PASS\ntests_failed: 0", "no result: line"),
        ("Result: PASS\nstatus: PASS", "no result: line"),
        ("```\nresult: PASS\n```\nstatus: PASS\ntests_failed: 0", "no result: line"),
        ("result: PASSED", "result: unknown value"),
        ("result: OK", "result: unknown value"),
        ("result:", "result: unknown value"),
        ("result: paß", "result: unknown value"),
        ("result: PASS\nstatus: OK", "status: unknown value"),
        ("result: PASS\nstatus: PASSED", "status: unknown value"),
        ("result: PASS\nresult: FAIL", "conflicting"),
        ("result: PASS\nstatus: PASS\nstatus: FAIL", "conflicting"),
        ("result: PASS\ntests_failed: 0\ntests_failed: 1", "conflicting"),
        ("result: FAIL\nstatus: FAIL\nstatus: PASS", "conflicting"),
    ],
)
def test_tests_verdict_is_invalid_without_a_well_formed_result(text, reason):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.INVALID
    assert result.verdict == "INVALID"
    assert reason in result.reason


@pytest.mark.parametrize(
    "count", ["none", "-1", "+0", "1.0", "0x0", "1e3", "1_000", "zero", "", "0 0", "²", "٠", "０"]
)
@pytest.mark.parametrize("result", ["PASS", "FAIL"])
def test_non_integer_tests_failed_is_invalid(result, count):
    verdict = check_tests_passed(artifact(f"result: {result}", f"tests_failed: {count}"))
    assert verdict.status is GateStatus.INVALID
    assert "tests_failed" in verdict.reason


def test_missing_test_report_is_invalid():
    assert check_tests_passed(None).status is GateStatus.INVALID


@pytest.mark.parametrize(
    "text", [None, "", ALIGNED_PASS, "result: FAIL", "result: PASS\ntests_failed: x"]
)
def test_testing_gate_is_the_three_field_parser(text):
    assert check_tests_passed(text) == _parse_tests_verdict(text) == run_gate(Stage.TESTING, text)


# ---------------------------------------------------------------- the staging gate


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("staging_status: PASSED", GateStatus.PASSED),
        ("staging_status: passed  ", GateStatus.PASSED),
        ("staging_status: FAILED", GateStatus.FAILED),
        ("staging_status: PASS", GateStatus.INVALID),
        ("staging_status: OK", GateStatus.INVALID),
        ("staging_status: paſſed", GateStatus.INVALID),
        ("staging_status: PASSED\nstaging_status: FAILED", GateStatus.INVALID),
        ("Staging_Status: PASSED", GateStatus.INVALID),
        (" staging_status: PASSED", GateStatus.INVALID),
        ("~~~\nstaging_status: PASSED\n~~~", GateStatus.INVALID),
        ("result: PASS", GateStatus.INVALID),
        (None, GateStatus.INVALID),
    ],
)
def test_staging_status_is_read_like_every_other_key(text, status):
    assert _parse_staging_status(text).status is status
    assert check_staging_status(text) == _parse_staging_status(text)
    assert run_gate(Stage.DEPLOY_STAGING, text) == check_staging_status(text)


# ---------------------------------------------------------------- properties

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)
# A CommonMark fence: 0-3 spaces, then 3+ backticks and no other backtick, or 3+ tildes.
_FENCE = re.compile(r"^ {0,3}(`{3,}[^`]*|~{3,}.*)$")
one_line = st.text(st.characters(exclude_characters="\r\n"), max_size=30)
TRICKY_VALUES = ["PASS", "pass", " Pass ", "PASSED", "passed", "FAIL", "FAILED", "0", "1", ""]
TRICKY_VALUES += ["PA SS", "paß", "PAſS", "P\u0410SS", "PASS!", "`PASS`", "PASS # ok", "HEALTHY"]
TRICKY_PROSE = ["Result: PASS", "RESULT: PASS", "- result: FAIL", "> status: FAIL", "``", "~~"]
TRICKY_PROSE += ["``` a`b", "note: PASS", "Staging_Status: FAILED", "    ```", "\t~~~", "---"]
TRICKY_PROSE += ["old run:\u2028result: PASS", "x\x85staging_status: PASSED", "\x0cstatus: FAIL"]
KEY_NAMES = ["result", "status", "tests_failed", "staging_status", "Result", "other_key"]
INDENTS = [" ", "  ", "   ", "    ", "\t", " \t"]
SPACING = st.sampled_from(["", " ", "  ", "\t"])
prose = st.one_of(one_line, st.sampled_from(TRICKY_PROSE)).map(
    lambda s: f"x{s}" if _FENCE.match(s) else s
)


def _is_word_line(line: str, key: str, word: str) -> bool:
    """A well-formed column-0 `key: word` line (ASCII case-insensitive, trimmed)."""
    return line.startswith(f"{key}:") and line[len(key) + 1 :].strip().lower() == word.lower()


def key_lines(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda k, s, v: f"{k}:{s}{v}", st.sampled_from(KEY_NAMES), SPACING, values)


@st.composite
def fenced_block(draw, inner: st.SearchStrategy[str], closed: bool = True) -> list[str]:
    """A fence around `inner` lines and lines that look like, but are not, its closing fence."""
    char, other = draw(st.sampled_from(["`~", "~`"]))
    length = draw(st.integers(3, 5))
    # The info string may not lengthen the marker run, nor hold a backtick.
    info = draw(st.one_of(st.sampled_from(["", "python", " md"]), one_line))
    info = info if "`" not in info and not info.startswith("~") else ""
    decoys = [other * 3, other * (length + 1), f"{char * length} x", f"{char * (length + 1)}x"]
    decoys += ["    " + char * length, other * 3 + char * length, char * (length - 1)]
    if length == 3:
        decoys.pop()  # two markers are prose, not a shorter fence
    lines = [" " * draw(st.integers(0, 3)) + char * length + info]
    lines += draw(st.lists(st.one_of(inner, st.sampled_from(decoys)), max_size=6))
    if closed:
        closer = char * draw(st.integers(length, length + 2)) + " " * draw(st.integers(0, 2))
        lines.append(" " * draw(st.integers(0, 3)) + closer)
    return lines


@st.composite
def texts_without_an_unfenced(draw, key: str, word: str) -> str:
    """Markdown from a line grammar in which `key: word` appears only fenced or indented."""
    value = st.one_of(one_line, st.sampled_from([*TRICKY_VALUES, word, word.lower()]))
    word_line = st.builds(
        lambda s, w: f"{key}:{s}{w}",
        SPACING,
        st.sampled_from([word, word.lower(), f" {word.title()}"]),
    )
    any_line = st.one_of(prose, key_lines(value), word_line)
    top_line = st.builds(
        lambda line, indent: indent + line if _is_word_line(line, key, word) else line,
        any_line,
        st.sampled_from(INDENTS),
    )
    blocks = draw(
        st.lists(st.one_of(top_line.map(lambda x: [x]), fenced_block(any_line)), max_size=8)
    )
    blocks.append(draw(st.one_of(st.just([]), fenced_block(any_line, closed=False))))
    return draw(st.sampled_from(["\n", "\r\n"])).join(line for b in blocks for line in b)


def prose_without(keys: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Prose lines with no column-0 line of these keys and no fence lines."""
    key_start = re.compile(rf"^({'|'.join(keys)}):")

    def tame(line: str) -> str:
        return f"> {line}" if key_start.match(line) or _FENCE.match(line) else line

    lines = st.one_of(one_line, st.sampled_from(TRICKY_PROSE), st.just("other_key: FAIL"))
    return st.lists(lines.map(tame), max_size=12)


# gate, its keys, the pass key, its passing word, its failing word, a runner's passing block
TESTS = (check_tests_passed, ("result", "status", "tests_failed"), "result", "PASS", "FAIL")
STAGING = (check_staging_status, ("staging_status",), "staging_status", "PASSED", "FAILED")
GATE_CASES = pytest.mark.parametrize(
    ("gate", "keys", "key", "word", "fail", "block"),
    [(*TESTS, ALIGNED_PASS.split("\n")), (*STAGING, ["staging_status: PASSED"])],
    ids=["tests", "staging"],
)


def _embed(draw, block: list[str], keys: tuple[str, ...]) -> list[str]:
    prose = draw(prose_without(keys))
    at = draw(st.integers(0, len(prose)))
    return prose[:at] + block + prose[at:]


@GATE_CASES
@PROPERTY_SETTINGS
@given(data=st.data())
def test_text_without_an_unfenced_column_0_pass_line_never_passes(
    data, gate, keys, key, word, fail, block
):
    text = data.draw(texts_without_an_unfenced(key, word))
    assert not gate(text).passed


@GATE_CASES
@PROPERTY_SETTINGS
@given(data=st.data())
def test_runner_block_in_prose_always_passes(data, gate, keys, key, word, fail, block):
    lines = _embed(data.draw, block, keys)
    text = data.draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    assert gate(text).passed


@GATE_CASES
@PROPERTY_SETTINGS
@given(data=st.data())
def test_runner_block_in_a_fence_or_indented_never_passes(data, gate, keys, key, word, fail, block):
    if data.draw(st.booleans()):
        char = data.draw(st.sampled_from("`~"))
        length = data.draw(st.integers(3, 5))
        indent = " " * data.draw(st.integers(0, 3))
        opener = indent + char * length + data.draw(st.sampled_from(["", "text", " md"]))
        unclosed_or_closer = ["", char * length, "   " + char * (length + 1)]
        hidden = [opener, *block, data.draw(st.sampled_from(unclosed_or_closer))]
    else:
        hidden = [data.draw(st.sampled_from([*INDENTS, "     "])) + line for line in block]
    assert not gate("\n".join(_embed(data.draw, hidden, keys))).passed


@GATE_CASES
@PROPERTY_SETTINGS
@given(data=st.data())
def test_unfenced_conflicting_line_anywhere_stops_a_pass(data, gate, keys, key, word, fail, block):
    lines = _embed(data.draw, block, keys)
    conflict = data.draw(st.sampled_from([fail, fail.lower(), f" {fail.title()} "]))
    spacing = data.draw(st.sampled_from(["", " ", "  "]))
    lines.insert(data.draw(st.integers(0, len(lines))), f"{key}:{spacing}{conflict}")
    assert not gate("\n".join(lines)).passed


@GATE_CASES
@PROPERTY_SETTINGS
@given(data=st.data())
def test_closed_fences_around_the_runner_block_hide_only_their_own_lines(
    data, gate, keys, key, word, fail, block
):
    chunks = [[line] for line in _embed(data.draw, block, keys)]
    conflicts = st.sampled_from([f"{key}: {fail}", f"{key}: MAYBE", *(f"{k}: 1" for k in keys)])
    for _ in range(data.draw(st.integers(1, 3))):
        fenced = data.draw(fenced_block(st.one_of(prose, conflicts, key_lines(one_line))))
        chunks.insert(data.draw(st.integers(0, len(chunks))), fenced)
    assert gate("\n".join(line for chunk in chunks for line in chunk)).passed
