"""Validation of the names users and agents hand us: nothing may leave its folder."""

from __future__ import annotations

import re

from orchestrator.errors import InvalidName

TASK_ID = re.compile(r"[a-z0-9]{4,40}")
# Letters, digits, '.', '_' and '-', starting with a letter or digit, with no '..' and no
# trailing '.' or '.lock' (git's rules for a name), at most REPO_NAME_MAX: written without
# look-arounds, so that the API's schema documents this very pattern (JSON Schema and
# pydantic's regex engine have none), and a request the schema allows is never refused.
REPO_NAME_MAX = 64
_CHAR = "A-Za-z0-9_-"
_NOT_LOCK = "|".join(
    (
        f"[{_CHAR}]{{1,3}}",
        f"[{_CHAR}]{{5,}}",
        f"[A-Za-km-z0-9_-][{_CHAR}]{{3}}",
        f"l[A-Za-np-z0-9_-][{_CHAR}]{{2}}",
        f"lo[A-Zabd-z0-9_-][{_CHAR}]",
        "loc[A-Za-jl-z0-9_-]",
    )
)
REPO_NAME = re.compile(rf"[A-Za-z0-9][{_CHAR}]*(?:(?:\.[{_CHAR}]+)*\.(?:{_NOT_LOCK}))?")
ARTIFACT_NAME = re.compile(r"[0-9]{2}-[a-z0-9][a-z0-9_-]*\.md")


def check_task_id(value: str) -> str:
    """Return `value` if it is a well-formed task id (lower-case letters and digits)."""
    if not TASK_ID.fullmatch(value):
        raise InvalidName(f"invalid task id {value!r}: expected 4-40 lower-case letters or digits")
    return value


def check_repo_name(value: str) -> str:
    """Return `value` if it can name a repo: letters, digits, '.', '_', '-', no '..'."""
    if len(value) > REPO_NAME_MAX or not REPO_NAME.fullmatch(value):
        raise InvalidName(
            f"invalid repo name {value!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


def check_artifact_name(value: str) -> str:
    """Return `value` if it is an artifact file name like `13-test-report.md`."""
    if not ARTIFACT_NAME.fullmatch(value):
        raise InvalidName(
            f"invalid artifact name {value!r}: expected a name like 13-test-report.md"
        )
    return value
