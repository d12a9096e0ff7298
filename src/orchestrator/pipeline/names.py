"""Validation of the names users and agents hand us: nothing may leave its folder."""

from __future__ import annotations

import re

from orchestrator.errors import InvalidName

TASK_ID = re.compile(r"[a-z0-9]{4,40}")
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ARTIFACT_NAME = re.compile(r"[0-9]{2}-[a-z0-9][a-z0-9_-]*\.md")


def check_task_id(value: str) -> str:
    """Return `value` if it is a well-formed task id (lower-case letters and digits)."""
    if not TASK_ID.fullmatch(value):
        raise InvalidName(f"invalid task id {value!r}: expected 4-40 lower-case letters or digits")
    return value


def check_repo_name(value: str) -> str:
    """Return `value` if it can name a repo: letters, digits, '.', '_', '-', no '..'."""
    if not REPO_NAME.fullmatch(value) or ".." in value or value.endswith((".", ".lock")):
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
