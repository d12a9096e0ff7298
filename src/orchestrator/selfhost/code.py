"""Which code is running: the git checkout the orchestrator package was loaded from."""

from __future__ import annotations

from pathlib import Path

import orchestrator
from orchestrator.errors import GitError
from orchestrator.workspace import git


def code_checkout() -> Path | None:
    """The root of the git checkout the running package comes from, if it comes from one."""
    try:
        return git.toplevel(Path(orchestrator.__file__).resolve().parent)
    except GitError:
        return None


def code_commit() -> str | None:
    """HEAD of that checkout (read now: after a merge and a restart it is the new commit)."""
    root = code_checkout()
    if root is None:
        return None
    try:
        return git.head(root)
    except GitError:
        return None
