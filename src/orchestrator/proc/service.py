"""A long-running child service (the supervised `orch serve`): started, signalled, reaped."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Mapping, Sequence

from orchestrator.errors import SpawnFailed

ServiceProcess = subprocess.Popen[bytes]


def start_service(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServiceProcess:
    """Start `argv` (never through a shell) as a child that shares our terminal and group."""
    try:
        return subprocess.Popen(
            list(argv), env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise SpawnFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


def stop_service(process: ServiceProcess, grace_s: float) -> int:
    """SIGTERM, then SIGKILL after `grace_s`; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return process.wait()
