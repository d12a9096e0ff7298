"""Short commands (git and the like) that finish in seconds and whose output we read whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SpawnFailed
from orchestrator.proc.group import CancelToken
from orchestrator.proc.sweep import MARKER_VAR, kill_tree
from orchestrator.settings import Settings

# ORCH_KILL_GRACE_S's default: callers that hold the settings pass their own value.
DEFAULT_GRACE_S: float = Settings.model_fields["kill_grace_s"].default
# After the kill, how long we go on reading what the command wrote. A descendant we could
# not find (it left the group and dropped our marker) may hold the pipes open for ever.
DRAIN_AFTER_KILL_S = 5.0
# How often a command that can be cancelled looks at its token.
CANCEL_POLL_S = 0.05


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
    grace: float = DEFAULT_GRACE_S,
    cancel: CancelToken | None = None,
) -> CommandResult:
    """Run `argv` (never through a shell) in its own process group and capture its output.

    On timeout, or once `cancel` is set, the command's whole tree is killed the way a job's
    is (`sweep.kill_tree`): SIGTERM, `grace` seconds, SIGKILL, and a sweep for descendants
    that left the group, so nothing the command started outlives it and no pipe it held keeps
    us waiting.
    """
    marker = uuid.uuid4().hex
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**(os.environ if env is None else env), MARKER_VAR: marker},
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise SpawnFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    data = stdin_text.encode("utf-8") if stdin_text is not None else None
    try:
        stdout, stderr = _communicate(process, data, timeout, cancel)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid, marker, grace=grace, leader=process)
        stdout, stderr = _drain(process)
        stopped = cancel is not None and cancel.cancelled
        why = "was stopped (its job was)" if stopped else f"timed out after {timeout:g}s and was"
        code = process.returncode if process.returncode is not None else -signal.SIGKILL
        return CommandResult(
            tuple(argv), code, _text(stdout), _text(stderr) + f"\n{argv[0]} {why} killed"
        )
    except BaseException:
        kill_tree(process.pid, marker, grace=grace, leader=process)
        _drain(process)
        raise
    return CommandResult(tuple(argv), process.returncode, _text(stdout), _text(stderr))


def _communicate(
    process: subprocess.Popen[bytes], data: bytes | None, timeout: float, cancel: CancelToken | None
) -> tuple[bytes, bytes]:
    """The command's output once it ends; TimeoutExpired at `timeout` or once cancelled."""
    if cancel is None:
        return process.communicate(data, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if cancel.cancelled or left <= 0:
            raise subprocess.TimeoutExpired(process.args, timeout)
        try:
            # Called again after a timeout, communicate carries on where it stopped.
            return process.communicate(data, timeout=min(CANCEL_POLL_S, left))
        except subprocess.TimeoutExpired:
            data = None  # already handed over


def _drain(process: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What the killed command wrote, read for a bounded time; the pipes are closed after."""
    try:
        stdout, stderr = process.communicate(timeout=DRAIN_AFTER_KILL_S)
    except subprocess.TimeoutExpired as exc:
        stdout, stderr = exc.output or b"", exc.stderr or b""
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    process.wait()
    return stdout or b"", stderr or b""


def _text(data: bytes) -> str:
    # As a text-mode pipe reads it (universal newlines): callers split lines on "\n".
    text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")
