"""The repo-name rule is one pattern without look-arounds (so the API's schema documents it
as it is): it must say exactly what the rule in words says, for every string."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InvalidName
from orchestrator.pipeline.names import REPO_NAME, REPO_NAME_MAX, check_repo_name

CHARS = "A-Za-z0-9_.-"


def the_rule_in_words(name: str) -> bool:
    """Letters, digits, '.', '_', '-'; at most 64; a letter or digit first; no '..'; no
    trailing '.' or '.lock'."""
    return (
        re.fullmatch(f"[A-Za-z0-9][{CHARS}]*", name) is not None
        and len(name) <= REPO_NAME_MAX
        and ".." not in name
        and not name.endswith((".", ".lock"))
    )


def allowed(name: str) -> bool:
    try:
        check_repo_name(name)
    except InvalidName:
        return False
    return True


# Names built from the pieces that matter (dots, "lock" and its near misses), and any text.
PIECES = st.sampled_from(["a", "Z", "9", "_", "-", ".", "..", "lock", "loc", "lok", "lockk", "L"])
NAMES = st.one_of(st.lists(PIECES, max_size=12).map("".join), st.text(max_size=70))


@given(NAMES)
def test_the_pattern_says_what_the_rule_says(name: str) -> None:
    assert allowed(name) == the_rule_in_words(name)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("app", True), ("my.app-2_x", True), ("lock", True), ("a.locks", True), ("a.Lock", True),
     ("a.lock", False), ("a..b", False), ("a.", False), (".a", False), ("a" * 65, False)],
)  # fmt: skip
def test_examples(name: str, ok: bool) -> None:
    assert allowed(name) is ok
    assert (REPO_NAME.fullmatch(name) is not None and len(name) <= REPO_NAME_MAX) is ok
