"""The `codex` backend: `codex exec --json`, reading its JSONL events."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator.transport.classify import classify_message
from orchestrator.transport.claude import as_dict, as_str, exit_message, json_lines
from orchestrator.transport.outcome import SHORT, one_line
from orchestrator.transport.types import Denial, ErrorKind, Parsed, Usage

EXECUTABLE = "codex"
# Codex's safe sandbox for unattended work: writes inside its writable roots only.
SANDBOX = "workspace-write"
# How a write outside the sandbox's writable roots fails inside it (a read-only mount).
SANDBOX_REFUSAL = "Read-only file system"


def home() -> Path:
    """Where Codex keeps its configuration and its sessions' records (CODEX_HOME)."""
    configured = os.environ.get("CODEX_HOME")
    return Path(configured) if configured else Path.home() / ".codex"


def argv(worktree: Path, artifact_dir: Path) -> list[str]:
    """The command line, the prompt to follow on stdin (`-`).

    The artifact folder lives under ORCH_HOME, outside the worktree, so it is added as a
    writable root of the sandbox (`--add-dir`); nothing else outside the worktree is.
    """
    return [
        EXECUTABLE,
        "exec",
        "--json",
        "--sandbox",
        SANDBOX,
        "-C",
        str(worktree),
        "--add-dir",
        str(artifact_dir),
    ]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse(lines: Iterable[str], exit_code: int | None) -> Parsed:
    """Sum the usage of completed turns; a failed turn or a non-zero exit is an error.

    Top-level `error` events (reconnect notices and the like) do not end the call; they only
    explain a failure when one happens. Codex reports a failure only as a message (no status
    or error type), so its kind comes from the words (`classify_message`). A command the
    sandbox refused does not fail the turn; it is kept to explain a missing artifact.
    """
    tokens_in = tokens_out = cached = 0
    cache_written: int | None = None  # newer versions only
    completed = False
    failure = ""
    last_error = ""
    final_text = ""
    tool_error = ""
    thread = ""
    denials: list[Denial] = []
    noise: list[str] = []
    for event in json_lines(lines, noise):
        kind = event.get("type")
        if kind == "thread.started":
            thread = as_str(event.get("thread_id"))
        elif kind == "turn.completed":
            completed = True
            turn = as_dict(event.get("usage"))
            tokens_in += _count(turn.get("input_tokens"))
            tokens_out += _count(turn.get("output_tokens"))
            cached += _count(turn.get("cached_input_tokens"))
            if "cache_write_input_tokens" in turn:
                cache_written = (cache_written or 0) + _count(turn["cache_write_input_tokens"])
        elif kind == "turn.failed":
            failure = as_str(as_dict(event.get("error")).get("message")) or "turn failed"
        elif kind == "error":
            last_error = as_str(event.get("message"))
        elif kind == "item.completed":
            item = as_dict(event.get("item"))
            if item.get("type") == "agent_message":
                final_text = as_str(item.get("text")) or final_text
            elif item.get("type") == "command_execution" and item.get("status") == "failed":
                tool_error = (
                    one_line(as_str(item.get("aggregated_output")), SHORT, keep_end=True)
                    or tool_error
                )
                denial = _denial(item)
                if denial is not None:
                    denials.append(denial)

    usage = Usage(
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cache_read_tokens=cached,
        cache_write_tokens=cache_written,
        session_id=thread or None,
    )
    if failure or exit_code != 0:
        message = failure or last_error or exit_message(EXECUTABLE, exit_code, noise)
        return Parsed(classify_message(message), message, final_text, usage)
    if not completed:
        return Parsed(ErrorKind.PROTOCOL_ERROR, "codex exited 0 without a completed turn")
    return Parsed(ErrorKind.OK, "", final_text, usage, tuple(denials), tool_error)


def _denial(item: dict[str, object]) -> Denial | None:
    """A failed command the sandbox refused: its own error line, the command it was in."""
    return _refused(as_str(item.get("command")), as_str(item.get("aggregated_output")))


def _refused(command: str, output: str) -> Denial | None:
    refused = next((line for line in output.splitlines() if SANDBOX_REFUSAL in line), None)
    if refused is None:
        return None
    shown, why = one_line(command, SHORT), one_line(refused, SHORT)
    return Denial("", f"Codex's sandbox ({SANDBOX}) refused `{shown}`: {why}")


def session_denials(codex_home: Path, thread_id: str) -> tuple[Denial, ...]:
    """The refused commands of a session, read from Codex's own record of it (its rollout).

    Codex 0.169 often prints no item for a command that fails within a millisecond, which a
    sandbox refusal does, so the JSONL stream alone can miss the denial that explains a
    missing artifact; the rollout holds every tool call and what it returned.
    """
    calls: dict[str, str] = {}
    found: list[Denial] = []
    for rollout in sorted(codex_home.glob(f"sessions/*/*/*/rollout-*-{thread_id}.jsonl")):
        with rollout.open(encoding="utf-8", errors="replace") as lines:
            for entry in json_lines(lines):
                item = as_dict(entry.get("payload")) if entry.get("type") == "response_item" else {}
                if item.get("type") == "function_call":
                    arguments = as_str(item.get("arguments"))
                    calls[as_str(item.get("call_id"))] = _command_of(arguments)
                elif item.get("type") == "function_call_output":
                    command = calls.get(as_str(item.get("call_id")), "")
                    denial = _refused(command, as_str(item.get("output")))
                    if denial is not None:
                        found.append(denial)
    return tuple(found)


def _command_of(arguments: str) -> str:
    """The command of an `exec_command` call's JSON arguments ("" when it has none)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return ""
    return as_str(as_dict(value).get("cmd"))
