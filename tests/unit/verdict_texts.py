"""Hypothesis strategies for artifacts: Markdown built from a line grammar of verdict keys,
prose, fences and indentation, shared by the gate and verdict-key properties."""

from __future__ import annotations

import re

from hypothesis import settings
from hypothesis import strategies as st

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)
# A CommonMark fence: 0-3 spaces, then 3+ backticks and no other backtick, or 3+ tildes.
FENCE = re.compile(r"^ {0,3}(`{3,}[^`]*|~{3,}.*)$")
one_line = st.text(st.characters(exclude_characters="\r\n"), max_size=30)
TRICKY_VALUES = ["PASS", "pass", " Pass ", "PASSED", "passed", "FAIL", "FAILED", "0", "1", ""]
TRICKY_VALUES += ["PA SS", "paß", "PAſS", "P\u0410SS", "PASS!", "`PASS`", "PASS # ok", "HEALTHY"]
TRICKY_VALUES += ["READY", "DONE", "APPROVED", "DEPLOYED", "SKIPPED", "re\u0430dy", "DONE."]
TRICKY_PROSE = ["Result: PASS", "RESULT: PASS", "- result: FAIL", "> status: FAIL", "``", "~~"]
TRICKY_PROSE += ["``` a`b", "note: PASS", "Staging_Status: FAILED", "    ```", "\t~~~", "---"]
TRICKY_PROSE += ["old run:\u2028result: PASS", "x\x85staging_status: PASSED", "\x0cstatus: FAIL"]
TRICKY_PROSE += ["Dev_Status: DONE", "* review_verdict: APPROVED", "#analysis_status: READY"]
# Every key a gate reads, and look-alikes that are not keys.
KEY_NAMES = ["result", "status", "tests_failed", "staging_status", "analysis_status"]
KEY_NAMES += ["design_status", "dev_status", "review_verdict", "deploy_status", "monitor_status"]
KEY_NAMES += ["Result", "Dev_status", "other_key"]
INDENTS = [" ", "  ", "   ", "    ", "\t", " \t"]
SPACING = st.sampled_from(["", " ", "  ", "\t"])
NEWLINES = st.sampled_from(["\n", "\r\n"])
prose = st.one_of(one_line, st.sampled_from(TRICKY_PROSE)).map(
    lambda s: f"x{s}" if FENCE.match(s) else s
)


def is_word_line(line: str, key: str, words: tuple[str, ...]) -> bool:
    """A well-formed column-0 `key: word` line for one of `words` (ASCII case-insensitive,
    trimmed): what a gate takes as the word."""
    if not line.startswith(f"{key}:"):
        return False
    value = line[len(key) + 1 :].strip()
    return value.isascii() and value.lower() in {word.lower() for word in words}


def key_lines(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Column-0 `key: value` lines of any of KEY_NAMES."""
    return st.builds(lambda k, s, v: f"{k}:{s}{v}", st.sampled_from(KEY_NAMES), SPACING, values)


@st.composite
def fenced_block(draw: st.DrawFn, inner: st.SearchStrategy[str], closed: bool = True) -> list[str]:
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
def texts_without_an_unfenced(draw: st.DrawFn, key: str, words: tuple[str, ...]) -> str:
    """Markdown in which a `key: word` line (for any of `words`) is only fenced or indented."""
    variants = [form for word in words for form in (word, word.lower(), f" {word.title()}")]
    value = st.one_of(one_line, st.sampled_from([*TRICKY_VALUES, *variants]))
    word_line = st.builds(lambda s, w: f"{key}:{s}{w}", SPACING, st.sampled_from(variants))
    any_line = st.one_of(prose, key_lines(value), word_line)
    top_line = st.builds(
        lambda line, indent: indent + line if is_word_line(line, key, words) else line,
        any_line,
        st.sampled_from(INDENTS),
    )
    blocks = draw(
        st.lists(st.one_of(top_line.map(lambda x: [x]), fenced_block(any_line)), max_size=8)
    )
    blocks.append(draw(st.one_of(st.just([]), fenced_block(any_line, closed=False))))
    return draw(NEWLINES).join(line for b in blocks for line in b)


def prose_without(keys: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    """Prose lines with no column-0 line of these keys and no fence lines."""
    key_start = re.compile(rf"^({'|'.join(keys)}):")

    def tame(line: str) -> str:
        return f"> {line}" if key_start.match(line) or FENCE.match(line) else line

    lines = st.one_of(one_line, st.sampled_from(TRICKY_PROSE), st.just("other_key: FAIL"))
    return st.lists(lines.map(tame), max_size=12)


def embed(draw: st.DrawFn, block: list[str], keys: tuple[str, ...]) -> list[str]:
    """`block` at a random place among prose lines that hold none of `keys`."""
    lines = draw(prose_without(keys))
    at = draw(st.integers(0, len(lines)))
    return lines[:at] + block + lines[at:]
