"""Verdict keys (SPEC section 3): column-0, lower-case, unfenced `key: VALUE` lines."""

import operator
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.pipeline.verdicts import KeyRead, parse_verdict_keys, read_key
from tests.unit.verdict_texts import (
    INDENTS,
    NEWLINES,
    PROPERTY_SETTINGS,
    fenced_block,
    key_lines,
    one_line,
    prose,
    texts_without_an_unfenced,
)


def test_column_0_key_is_read_with_its_value():
    text = "# Review\n\nLooks good.\n\nreview_verdict: APPROVED\n"
    assert parse_verdict_keys(text) == {"review_verdict": ("APPROVED",)}


def test_keys_with_digits_and_underscores_are_read():
    assert parse_verdict_keys("tests_failed: 0\nstep2_status: OK") == {
        "tests_failed": ("0",),
        "step2_status": ("OK",),
    }


def test_empty_text_has_no_keys():
    assert parse_verdict_keys("") == {}


@pytest.mark.parametrize(
    "line",
    [" result: PASS", "  result: PASS", "   result: PASS", "    result: PASS", "\tresult: PASS"],
)
def test_indented_key_is_not_a_verdict(line):
    assert parse_verdict_keys(f"intro\n{line}\n") == {}


@pytest.mark.parametrize(
    "line",
    [
        "Result: PASS",
        "RESULT: PASS",
        "Review_Verdict: APPROVED",
        "resulT: PASS",
        "- result: PASS",
        "> result: PASS",
        "**result**: PASS",
        "`result: PASS`",
        "result : PASS",
        "1result: PASS",
        "_result: PASS",
    ],
)
def test_line_not_of_the_form_lower_case_key_colon_is_not_a_verdict(line):
    assert parse_verdict_keys(line) == {}


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("result: PASS", "PASS"),
        ("result:    PASS   ", "PASS"),
        ("result:\tPASS\t", "PASS"),
        ("result: pass", "pass"),
        ("result:", ""),
        ("result: PASS with words", "PASS with words"),
    ],
)
def test_values_are_trimmed(line, value):
    assert parse_verdict_keys(line) == {"result": (value,)}


def test_every_value_of_a_repeated_key_is_kept_in_order():
    text = "result: PASS\nprose\nresult: FAIL\nresult: pass"
    assert parse_verdict_keys(text) == {"result": ("PASS", "FAIL", "pass")}


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"])
def test_all_markdown_line_endings_separate_lines(ending):
    text = ending.join(["# Report", "result: PASS", "status: PASS", "tests_failed: 0", ""])
    assert parse_verdict_keys(text) == {
        "result": ("PASS",),
        "status": ("PASS",),
        "tests_failed": ("0",),
    }


def test_crlf_fence_hides_keys_and_closes():
    text = "```\r\nresult: FAIL\r\n```\r\nresult: PASS\r\n"
    assert parse_verdict_keys(text) == {"result": ("PASS",)}


@pytest.mark.parametrize(
    "separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_unicode_line_separators_do_not_start_a_new_line(separator):
    # Markdown ends lines only at LF, CR and CRLF: this is one prose line, not a key.
    assert parse_verdict_keys(f"the old run said{separator}result: PASS") == {}


# ---------------------------------------------------------------- fences


@pytest.mark.parametrize(
    "text",
    [
        "```\nresult: PASS\n```",
        "~~~\nresult: PASS\n~~~",
        "```text\nresult: PASS\n```",
        "``` markdown title\nresult: PASS\n```",
        "~~~ info with `backticks`\nresult: PASS\n~~~",
        " ```\nresult: PASS\n ```",
        "  ~~~\nresult: PASS\n  ~~~",
        "   ```\nresult: PASS\n   ```",
        "   ```\nresult: PASS\n```",
        "```\nresult: PASS\n   ```",
        "`````\nresult: PASS\n`````",
        "```\nresult: PASS\n```   ",
    ],
)
def test_fenced_key_is_not_a_verdict(text):
    assert parse_verdict_keys(f"intro: yes\n{text}\n") == {"intro": ("yes",)}


@pytest.mark.parametrize(
    "text",
    [
        "```\nresult: FAIL\n```\nresult: PASS",
        "~~~\nresult: FAIL\n~~~\nresult: PASS",
        "```\nresult: FAIL\n``````\nresult: PASS",
        "~~~\nresult: FAIL\n~~~~~~~\nresult: PASS",
        "   ```\nresult: FAIL\n  ```\nresult: PASS",
    ],
)
def test_key_after_a_closed_fence_is_read(text):
    assert parse_verdict_keys(text) == {"result": ("PASS",)}


@pytest.mark.parametrize(
    "text",
    [
        "```\n~~~\nresult: FAIL\n```\nresult: PASS",
        "~~~\n```\nresult: FAIL\n~~~\nresult: PASS",
        "````\n```\nresult: FAIL\n````\nresult: PASS",
        "~~~~\n~~~\nresult: FAIL\n~~~~\nresult: PASS",
        "```\n```python\nresult: FAIL\n```\nresult: PASS",
        "```\n    ```\nresult: FAIL\n```\nresult: PASS",
    ],
)
def test_only_a_matching_bare_fence_at_least_as_long_closes(text):
    # The other marker, a shorter run, a run with an info string or indented four spaces
    # stays inside the block; only the last bare fence closes it.
    assert parse_verdict_keys(text) == {"result": ("PASS",)}


@pytest.mark.parametrize("opener", ["```", "~~~", "````", "   ~~~", "``` bash"])
def test_unclosed_fence_hides_everything_after_it(opener):
    text = f"dev_status: DONE\n{opener}\nresult: PASS\n\nstatus: PASS\n\ntests_failed: 0\n"
    assert parse_verdict_keys(text) == {"dev_status": ("DONE",)}


def test_four_space_indented_fence_is_not_a_fence():
    text = "    ```\nresult: PASS\n    ```"
    assert parse_verdict_keys(text) == {"result": ("PASS",)}


@pytest.mark.parametrize("line", ["``", "~~", "`` `", "``` a`b", "```` x`"])
def test_backtick_run_that_cannot_open_a_fence_hides_nothing(line):
    # Fewer than three markers, or a backtick info string holding a backtick, is inline code.
    assert parse_verdict_keys(f"{line}\nresult: PASS") == {"result": ("PASS",)}


def test_fences_can_follow_each_other():
    text = "```\nresult: FAIL\n```\nstatus: PASS\n~~~\nstatus: FAIL\n~~~\n```\nx: 1\n```"
    assert parse_verdict_keys(text) == {"status": ("PASS",)}


# ---------------------------------------------------------------- read_key


def test_missing_key_reads_as_missing():
    read = read_key({"status": ("PASS",)}, "result")
    assert read == KeyRead(None, "missing")
    assert read.missing


@pytest.mark.parametrize(
    "values", [("PASS",), ("pass",), ("Pass",), (" pass ",), ("PASS", "pass", " Pass")]
)
def test_value_is_compared_case_insensitively_after_trimming(values):
    read = read_key({"result": values}, "result")
    assert read.value == "PASS"
    assert read.problem is None
    assert not read.missing


def test_duplicate_key_with_the_same_value_is_fine():
    keys = parse_verdict_keys("result: PASS\nsome prose\nresult: PASS\n")
    assert read_key(keys, "result") == KeyRead("PASS")


@pytest.mark.parametrize(
    "values", [("PASS", "FAIL"), ("PASS", "PASS", "fail"), ("PASS", ""), ("PASS", "PASSED")]
)
def test_duplicate_key_with_different_values_is_a_conflict(values):
    read = read_key({"result": values}, "result")
    assert read.value is None
    assert not read.missing
    assert read.problem is not None
    assert "result" in read.problem
    assert "conflicting" in read.problem


def test_conflict_names_the_values_it_saw():
    read = read_key(parse_verdict_keys("result: pass\nresult: FAIL"), "result")
    assert read.problem is not None
    assert "PASS" in read.problem
    assert "FAIL" in read.problem


@pytest.mark.parametrize("value", ["paß", "PAſS", "P\u0410SS", "ｐａｓｓ"])
def test_non_ascii_look_alike_is_not_the_ascii_value(value):
    # Case-insensitive means ASCII case: "paß".upper() is "PASS" in Python, but it is not PASS.
    assert read_key({"result": (value,)}, "result").value != "PASS"
    assert read_key({"result": ("PASS", value)}, "result").value is None


def test_empty_value_is_present_but_empty():
    read = read_key(parse_verdict_keys("result:"), "result")
    assert read.value == ""
    assert not read.missing


# ---------------------------------------------------------------- properties

LINE_END = re.compile(r"\r\n|\r|\n")
COLUMN_0_KEY = re.compile(r"[a-z][a-z0-9_]*:")
# Lines outside any fence: prose (never a fence), key lines, and key lines indented.
indented_key_lines = st.builds(operator.add, st.sampled_from(INDENTS), key_lines(one_line))
open_lines = st.one_of(prose, key_lines(one_line), indented_key_lines)
WORDS = ["PASS", "pass", " Pass ", "FAIL", "fail", "PASSED", "MAYBE", "", "paß", "P\u0410SS"]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_every_key_read_is_a_column_0_line_of_the_text(data: st.DataObject) -> None:
    lines = data.draw(st.lists(st.one_of(open_lines.map(lambda x: [x]), fenced_block(open_lines))))
    text = data.draw(NEWLINES).join(line for block in lines for line in block)
    candidates: dict[str, list[str]] = {}
    for line in LINE_END.split(text):
        if COLUMN_0_KEY.match(line):
            key, value = line.split(":", 1)
            candidates.setdefault(key, []).append(value.strip())
    for key, values in parse_verdict_keys(text).items():
        remaining = list(candidates.get(key, []))
        for value in values:  # each value read is one of the key's lines, used once
            assert value in remaining, (key, value)
            remaining.remove(value)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_unfenced_column_0_keys_are_all_read_in_order(data: st.DataObject) -> None:
    lines = data.draw(st.lists(open_lines, max_size=12))
    expected: dict[str, tuple[str, ...]] = {}
    for line in lines:
        if COLUMN_0_KEY.match(line):
            key, value = line.split(":", 1)
            expected[key] = (*expected.get(key, ()), value.strip())
    assert parse_verdict_keys(data.draw(NEWLINES).join(lines)) == expected


@PROPERTY_SETTINGS
@given(data=st.data())
def test_keys_inside_a_closed_fence_are_hidden(data: st.DataObject) -> None:
    before = data.draw(st.lists(open_lines, max_size=6))
    after = data.draw(st.lists(open_lines, max_size=6))
    block = data.draw(fenced_block(st.one_of(open_lines, key_lines(st.sampled_from(WORDS)))))
    newline = data.draw(NEWLINES)
    fenced = parse_verdict_keys(newline.join([*before, *block, *after]))
    assert fenced == parse_verdict_keys(newline.join([*before, *after]))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_an_unclosed_fence_hides_everything_after_it(data: st.DataObject) -> None:
    before = data.draw(st.lists(open_lines, max_size=6))
    block = data.draw(fenced_block(open_lines, closed=False))
    text = data.draw(NEWLINES).join([*before, *block])
    assert parse_verdict_keys(text) == parse_verdict_keys("\n".join(before))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_indented_keys_are_hidden(data: st.DataObject) -> None:
    lines = data.draw(st.lists(open_lines, max_size=8))
    with_indented = list(lines)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(with_indented)))
        with_indented.insert(at, data.draw(indented_key_lines))
    assert parse_verdict_keys("\n".join(with_indented)) == parse_verdict_keys("\n".join(lines))


@PROPERTY_SETTINGS
@given(first=st.sampled_from(WORDS), second=st.sampled_from(WORDS), middle=st.lists(prose))
def test_a_key_given_two_different_values_fails_closed(
    first: str, second: str, middle: list[str]
) -> None:
    text = "\n".join(["result: " + first, *middle, "result:" + second])
    read = read_key(parse_verdict_keys(text), "result")

    def ascii_upper(value: str) -> str:  # SPEC 3: values compare in ASCII case only
        return "".join(c.upper() if c.isascii() else c for c in value.strip())

    same = ascii_upper(first) == ascii_upper(second)
    assert (read.value is not None) is same
    if not same:
        assert read.problem is not None and "conflicting" in read.problem


@PROPERTY_SETTINGS
@given(data=st.data())
def test_text_without_a_well_formed_pass_line_is_never_read_as_pass(data: st.DataObject) -> None:
    text = data.draw(texts_without_an_unfenced("result", ("PASS",)))
    assert read_key(parse_verdict_keys(text), "result").value != "PASS"
