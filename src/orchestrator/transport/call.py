"""The single LLM transport: the only code that starts an agent.

Every agent, whatever its backend, runs through `proc_group` in the task's worktree with the
prompt on stdin and the task variables in its environment. The result says how the call
ended (`ErrorKind`), with the tokens and cost the backend reported.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.errors import SpawnFailed
from orchestrator.proc import run_command
from orchestrator.proc.env import child_env
from orchestrator.proc.group import CancelToken, ProcResult, Started, run_group
from orchestrator.redact import secret_values
from orchestrator.settings import Settings
from orchestrator.transport import claude, codex
from orchestrator.transport.outcome import settle
from orchestrator.transport.types import AgentRequest, AgentResult, ErrorKind, Parsed, Usage

SCRIPTED_AGENT = Path(__file__).with_name("scripted_agent.py")
# `orch doctor` asks a command agent for --version; one that does not answer by then is
# probably waiting for a prompt on stdin, not broken.
COMMAND_VERSION_TIMEOUT_S = 5.0


def build_argv(settings: Settings, request: AgentRequest) -> list[str]:
    """The agent's command line for the configured backend (the prompt is never in it)."""
    extra = shlex.split(settings.agent_args) if settings.agent_args else []
    backend = settings.agent_backend
    if backend == "claude":
        return [*claude.argv(request.artifact_dir), *extra]
    if backend == "codex":
        return [*codex.argv(request.worktree, request.artifact_dir), *extra, "-"]
    if backend == "command":
        template = shlex.split(settings.agent_command or "")
        values = request.placeholders()
        return [arg.format_map(values) for arg in template]
    # scripted: a real executable that replays a scenario, so it takes the real spawn path.
    # -S: it needs nothing from site-packages, and the site's .pth files cost more than it.
    return [sys.executable, "-I", "-S", str(SCRIPTED_AGENT)]


def resolve_executable(program: str) -> str | None:
    """The absolute path of the executable `program`, or None when there is none.

    The agent starts in the task's worktree, so a relative path such as `./agent.sh` must be
    resolved here, from the orchestrator's working directory, where it was meant; a bare name
    is looked up on PATH (which may hold relative folders too).
    """
    if os.sep in program or (os.altsep is not None and os.altsep in program):
        candidate = os.path.abspath(program)
        return candidate if shutil.which(candidate) is not None else None
    found = shutil.which(program)
    return os.path.abspath(found) if found is not None else None


def missing_message(program: str) -> str:
    """Why `program` cannot be started, in the words `cli_missing` reports."""
    if os.sep in program:
        return f"{program} is not an executable file (from {os.getcwd()})"
    return f"{program} is not on PATH"


@dataclass(frozen=True)
class CliVersion:
    """What `--version` of the configured agent said: `orch doctor` runs it, and says so."""

    executable: str  # its path when found, else the name looked for
    ran: str  # the command run, as it was run ("" when nothing was run)
    line: str | None  # what it answered (None: not on PATH)
    ok: bool  # found, and it answered its version


def cli_version(settings: Settings) -> CliVersion:
    """Run the configured agent's `--version`: for a command agent this runs the user's own
    command, which need not know the flag (it may even wait for a prompt on stdin)."""
    backend = settings.agent_backend
    if backend == "scripted":
        return CliVersion("scripted agent", "", "built in", True)
    executable = {"claude": claude.EXECUTABLE, "codex": codex.EXECUTABLE}.get(backend)
    if executable is None:
        executable = shlex.split(settings.agent_command or "")[0]
    found = resolve_executable(executable)
    if found is None:
        return CliVersion(executable, "", None, False)
    ran = shlex.join([found, "--version"])
    started = time.monotonic()
    try:
        result = run_command([found, "--version"], timeout=COMMAND_VERSION_TIMEOUT_S)
    except SpawnFailed as exc:
        return CliVersion(found, ran, f"no version: {exc}", False)
    if time.monotonic() - started >= COMMAND_VERSION_TIMEOUT_S:
        line = f"no version: it did not answer --version within {COMMAND_VERSION_TIMEOUT_S:g}s"
        return CliVersion(found, ran, line, False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    if result.returncode != 0 or not lines:
        return CliVersion(found, ran, f"no version: --version exited {result.returncode}", False)
    return CliVersion(found, ran, lines[0], True)


def _lines(log_path: Path) -> Iterator[str]:
    with log_path.open(encoding="utf-8", errors="replace") as log:
        yield from log


def _parse(backend: str, proc: ProcResult) -> Parsed:
    if backend == "claude":
        return claude.parse(_lines(proc.log_path), proc.exit_code)
    if backend == "codex":
        return codex.parse(_lines(proc.log_path), proc.exit_code)
    if proc.exit_code == 0:
        return Parsed(ErrorKind.OK, final_text=proc.tail or proc.head)
    last = (proc.tail or proc.head).strip().splitlines()
    reason = f"exit {proc.exit_code}" if proc.exit_code is not None else f"signal {proc.signal}"
    return Parsed(ErrorKind.AGENT_ERROR, f"{reason}: {last[-1] if last else 'no output'}")


def call_agent(
    settings: Settings,
    request: AgentRequest,
    *,
    cancel: CancelToken | None = None,
    on_start: Callable[[Started], None] | None = None,
    marker: str | None = None,
    artifact_required: bool = True,
) -> AgentResult:
    """Run one agent to its end and say how it went; never raises for the agent's faults.

    `artifact_required=False` is for calls that only talk (`orch doctor --online`).
    """
    backend = settings.agent_backend
    argv = build_argv(settings, request)

    def failed(kind: ErrorKind, message: str) -> AgentResult:
        return AgentResult(backend, kind, message, None, "", Usage(), 0.0, request.log_path)

    if not request.worktree.is_dir():
        return failed(ErrorKind.SPAWN_FAILED, f"the worktree {request.worktree} is missing")
    executable = resolve_executable(argv[0])
    if executable is None:
        return failed(
            ErrorKind.CLI_MISSING, f"{missing_message(argv[0])} (ORCH_AGENT_BACKEND={backend})"
        )
    argv = [executable, *argv[1:]]
    variables = request.variables()
    if backend == "scripted" and settings.agent_scenario is not None:
        variables["ORCH_AGENT_SCENARIO"] = str(settings.agent_scenario)
    request.artifact_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = run_group(
            argv,
            cwd=request.worktree,
            env=child_env(variables),
            log_path=request.log_path,
            timeout=request.timeout_s,
            grace=settings.kill_grace_s,
            stdin_data=request.prompt.encode("utf-8"),
            cancel=cancel,
            on_start=on_start,
            marker=marker,
            secrets=secret_values(settings),  # what the agent prints of them is masked
        )
    except SpawnFailed as exc:
        return failed(ErrorKind.SPAWN_FAILED, str(exc))

    if proc.cancelled:
        parsed = Parsed(ErrorKind.CANCELLED, "stopped by the orchestrator")
    elif proc.timed_out:
        parsed = Parsed(ErrorKind.TIMEOUT, f"no result within {request.timeout_s:g}s")
    else:
        parsed = _parse(backend, proc)
    if artifact_required:
        written = request.artifact_path.is_file()
        if backend == "codex" and not written and not parsed.denials and parsed.usage.session_id:
            found = codex.session_denials(codex.home(), parsed.usage.session_id)
            parsed = replace(parsed, denials=found)
        parsed = settle(parsed, request.artifact_path, written)
    return AgentResult(
        backend=backend,
        kind=parsed.kind,
        message=parsed.message,
        exit_code=proc.exit_code,
        final_text=parsed.final_text,
        usage=parsed.usage,
        duration_s=proc.duration_s,
        log_path=proc.log_path,
    )
