"""Short commands (git and the like) that finish in seconds and whose output we read whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SpawnFailed


@dataclass(frozen=True)
class CommandResult:
    """What a short command did."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    stdin_text: str | None = None,
) -> CommandResult:
    """Run `argv` (never through a shell) in its own process group and capture its output.

    On timeout the whole group is killed, so nothing the command started outlives it.
    """
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise SpawnFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        stdout, stderr = process.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        stderr += f"\n{argv[0]} timed out after {timeout:g}s and was killed"
        return CommandResult(tuple(argv), -signal.SIGKILL, stdout, stderr)
    except BaseException:
        _kill_group(process.pid)
        process.wait()
        raise
    return CommandResult(tuple(argv), process.returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
