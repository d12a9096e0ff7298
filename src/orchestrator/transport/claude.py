"""The `claude` backend: Claude Code in print mode, reading its stream-json output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.transport.classify import classify
from orchestrator.transport.outcome import SHORT, one_line
from orchestrator.transport.types import Denial, ErrorKind, Parsed, Usage

EXECUTABLE = "claude"
# Claude Code's safe mode for unattended edits: file edits inside its working directories
# are accepted, anything else (most shell commands) is refused, never asked about.
PERMISSION_MODE = "acceptEdits"


def argv(artifact_dir: Path) -> list[str]:
    """The command line; the prompt goes on stdin.

    The artifact folder lives under ORCH_HOME, outside the worktree, so it is granted as a
    working directory of its own (`--add-dir`): `acceptEdits` covers it then, and nothing
    else outside the worktree is opened up.
    """
    return [
        EXECUTABLE,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--add-dir",
        str(artifact_dir),
        "--permission-mode",
        PERMISSION_MODE,
    ]


def json_lines(lines: Iterable[str], noise: list[str] | None = None) -> Iterable[dict[str, Any]]:
    """The JSON objects among `lines`; anything else (stderr) is skipped, or kept in `noise`
    when given: a CLI that dies before its first event says why only there."""
    for line in lines:
        line = line.strip()
        value: object = None
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = None
        if isinstance(value, dict):
            yield value
        elif line and noise is not None:
            noise.append(line)


def exit_message(program: str, exit_code: int | None, noise: list[str]) -> str:
    """Why `program` ended without saying so in its stream: its exit and last stderr line."""
    last = f": {one_line(noise[-1], SHORT)}" if noise else ""
    return f"{program} exited {exit_code}{last}"


def as_dict(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: the stream is untrusted input."""
    return value if isinstance(value, dict) else {}


def as_str(value: object) -> str:
    """`value` when it is a string, else empty."""
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse(lines: Iterable[str], exit_code: int | None) -> Parsed:
    """Read the stream: the final `result` object decides; intermediate errors do not.

    When it failed, the kind comes from the structured fields first: the result's
    `api_error_status`, then the `error` type Claude Code stamps on the last assistant event
    when that event was an API error it gave up on. A refused tool call does not fail the
    call (the CLI says "success"); it is kept to explain a missing artifact.
    """
    result: dict[str, Any] | None = None
    error_type: object = None
    mode = PERMISSION_MODE
    tool_error = ""
    noise: list[str] = []
    for event in json_lines(lines, noise):
        kind = event.get("type")
        if kind == "result":
            result = event
        elif kind == "assistant":
            error_type = event.get("error")  # only the last assistant event's counts
        elif kind == "system" and event.get("subtype") == "init":
            mode = as_str(event.get("permissionMode")) or mode
        elif kind == "user":
            tool_error = _failed_tool_output(event) or tool_error
    if result is None:
        if exit_code == 0:
            return Parsed(ErrorKind.PROTOCOL_ERROR, "claude exited 0 without a result line")
        return Parsed(ErrorKind.AGENT_ERROR, exit_message(EXECUTABLE, exit_code, noise))

    usage = _usage(result)
    text = as_str(result.get("result"))
    if result.get("is_error") or result.get("subtype", "success") != "success" or exit_code != 0:
        message = text or str(result.get("subtype") or f"exit {exit_code}")
        kind = classify(message, status=result.get("api_error_status"), error_type=error_type)
        return Parsed(kind, message, text, usage)
    denials = tuple(_denial(as_dict(d), mode) for d in _list(result.get("permission_denials")))
    return Parsed(ErrorKind.OK, "", text, usage, denials, tool_error)


def _usage(result: dict[str, Any]) -> Usage:
    """What the call spent: `modelUsage` when the CLI gives it, else `usage`.

    `usage` counts only the agent loop's streamed calls (a call it had to repeat without
    streaming counts zero there), while `modelUsage` counts every call per model, side calls
    included, like `total_cost_usd` does: the whole spend, which is what budgets are about.
    """
    per_model = [as_dict(m) for m in as_dict(result.get("modelUsage")).values()]
    cost = result.get("total_cost_usd")
    usage = Usage(
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        num_turns=_int(result.get("num_turns")),
        session_id=as_str(result.get("session_id")) or None,
    )
    if per_model:
        return replace(
            usage,
            tokens_in=_sum(per_model, "inputTokens"),
            tokens_out=_sum(per_model, "outputTokens"),
            cache_read_tokens=_sum(per_model, "cacheReadInputTokens"),
            cache_write_tokens=_sum(per_model, "cacheCreationInputTokens"),
        )
    raw = as_dict(result.get("usage"))
    return replace(
        usage,
        tokens_in=_int(raw.get("input_tokens")),
        tokens_out=_int(raw.get("output_tokens")),
        cache_read_tokens=_int(raw.get("cache_read_input_tokens")),
        cache_write_tokens=_int(raw.get("cache_creation_input_tokens")),
    )


def _sum(per_model: list[dict[str, Any]], key: str) -> int | None:
    counts = [_int(model.get(key)) for model in per_model]
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _denial(denial: dict[str, Any], mode: str) -> Denial:
    """One entry of the result's `permission_denials`, in words: the tool and what it was for."""
    tool = as_str(denial.get("tool_name")) or "a tool"
    arguments = as_dict(denial.get("tool_input"))
    path = as_str(arguments.get("file_path")) or as_str(arguments.get("notebook_path"))
    command = as_str(arguments.get("command"))
    target = f" to {path}" if path else f" `{one_line(command, SHORT)}`" if command else ""
    return Denial(path, f"Claude Code denied {tool}{target} (permission mode {mode})")


def _failed_tool_output(event: dict[str, Any]) -> str:
    """The text of the last tool result marked `is_error` in a user event ("" when none)."""
    found = ""
    for block in _list(as_dict(event.get("message")).get("content")):
        block = as_dict(block)
        if block.get("type") == "tool_result" and block.get("is_error") is True:
            content = block.get("content")
            if isinstance(content, list):
                content = " ".join(as_str(as_dict(part).get("text")) for part in content)
            found = one_line(as_str(content), SHORT) or found
    return found
