"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` for a test and return its stdout; fails the test when git fails."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def entries(folder: Path) -> list[Path]:
    """What a folder holds; empty when it does not exist (or is not a folder)."""
    return sorted(folder.iterdir()) if folder.is_dir() else []
