"""Verdict keys: the machine-readable lines of an artifact (the README's "The pipeline").

A verdict key is a line ``key: VALUE`` that starts at column 0, has a lower-case key and is
not inside a fenced code block. Everything else in an artifact is prose for people, and no
gate ever reads prose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# A CommonMark fence: three or more backticks or tildes, indented at most three spaces.
_FENCE = re.compile(r"^ {0,3}(?P<marker>`{3,}|~{3,})(?P<rest>.*)$")
_KEY_LINE = re.compile(r"^(?P<key>[a-z][a-z0-9_]*):(?P<value>.*)$")
# Markdown's line endings only; str.splitlines() would also break at \x0b, \x0c, \x1c-\x1e,
# \x85, \u2028 and \u2029, turning the middle of a prose line into a column-0 key.
_LINE_END = re.compile(r"\r\n|\r|\n")


def parse_verdict_keys(text: str) -> dict[str, tuple[str, ...]]:
    """Every verdict key in `text`, mapped to all the values it was given, trimmed, in order."""
    found: dict[str, list[str]] = {}
    open_fence: tuple[str, int] | None = None
    for line in _LINE_END.split(text):
        fence = _FENCE.match(line)
        if open_fence is not None:
            if fence is not None and _closes(fence, open_fence):
                open_fence = None
            continue
        if fence is not None and _opens(fence):
            marker = fence.group("marker")
            open_fence = (marker[0], len(marker))
            continue
        key_line = _KEY_LINE.match(line)
        if key_line is not None:
            found.setdefault(key_line.group("key"), []).append(key_line.group("value").strip())
    # An unclosed fence runs to the end of the text (as in CommonMark): whatever follows it
    # is code, so a key that only appears there is missing, and the gate fails closed.
    return {key: tuple(values) for key, values in found.items()}


def _opens(fence: re.Match[str]) -> bool:
    # A backtick fence's info string may not contain a backtick (that is inline code).
    return not (fence.group("marker").startswith("`") and "`" in fence.group("rest"))


def _closes(fence: re.Match[str], open_fence: tuple[str, int]) -> bool:
    marker = fence.group("marker")
    char, length = open_fence
    return marker[0] == char and len(marker) >= length and not fence.group("rest").strip()


@dataclass(frozen=True)
class KeyRead:
    """One key as a gate sees it: its normalised value, or why there is none."""

    value: str | None  # upper-cased, trimmed; None when missing or conflicting
    problem: str | None = None  # "missing" or a description of the conflict

    @property
    def missing(self) -> bool:
        """True when the key does not appear at all."""
        return self.value is None and self.problem == "missing"


def read_key(keys: Mapping[str, tuple[str, ...]], key: str) -> KeyRead:
    """Read one key: repeated with the same value is fine, with different values is a conflict."""
    values = keys.get(key)
    if not values:
        return KeyRead(None, "missing")
    normalised = {_normalise(v) for v in values}
    if len(normalised) > 1:
        shown = ", ".join(sorted(normalised))
        return KeyRead(None, f"{key}: given conflicting values ({shown})")
    return KeyRead(normalised.pop())


def _normalise(value: str) -> str:
    # Verdict values are ASCII words, so compare them ASCII-case-insensitively: str.upper()
    # alone would read "paß" as "PASS" and "paſſed" as "PASSED".
    trimmed = value.strip()
    return trimmed.upper() if trimmed.isascii() else trimmed


COMMIT_ID = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Judged:
    """The code a runner's verdict is about, written in its artifact as lines that bind the
    verdict to commits: what the suite ran on, the default branch's commit in it, and the
    tree the suite ran on (what the deploy compares, so that a tested commit made on another
    machine binds as well)."""

    tested: str  # `tested_commit:`
    base: str  # `base_commit:`
    tree: str | None = None  # `tested_tree:` (absent from reports written before it)

    def lines(self) -> list[str]:
        """The artifact's lines."""
        lines = [f"tested_commit: {self.tested}", f"base_commit: {self.base}"]
        return lines + ([f"tested_tree: {self.tree}"] if self.tree else [])

    @classmethod
    def read(cls, text: str) -> Judged | None:
        """The lines of an artifact, or None when it lacks one of the two commits (an LLM
        tester's report); a malformed tree reads as no tree."""
        keys = parse_verdict_keys(text)
        tested, base = read_key(keys, "tested_commit"), read_key(keys, "base_commit")
        commits = [read.value.lower() for read in (tested, base) if read.value is not None]
        if len(commits) != 2 or not all(COMMIT_ID.fullmatch(c) for c in commits):
            return None
        tree = (read_key(keys, "tested_tree").value or "").lower()
        return cls(commits[0], commits[1], tree if COMMIT_ID.fullmatch(tree) else None)
