"""The `codex` backend: `codex exec --json`, reading its JSONL events."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.transport.classify import classify_message
from orchestrator.transport.claude import as_dict, as_str, json_lines
from orchestrator.transport.types import ErrorKind, Parsed, Usage


def argv(worktree: Path) -> list[str]:
    """The command line; the prompt goes on stdin (`-`)."""
    return ["codex", "exec", "--json", "--sandbox", "workspace-write", "-C", str(worktree)]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse(lines: Iterable[str], exit_code: int | None) -> Parsed:
    """Sum the usage of completed turns; a failed turn or a non-zero exit is an error.

    Top-level `error` events (reconnect notices and the like) do not end the call; they only
    explain a failure when one happens. Codex reports a failure only as a message (no status
    or error type), so its kind comes from the words (`classify_message`).
    """
    tokens_in = tokens_out = cached = 0
    completed = False
    failure = ""
    last_error = ""
    final_text = ""
    for event in json_lines(lines):
        kind = event.get("type")
        if kind == "turn.completed":
            completed = True
            turn = as_dict(event.get("usage"))
            tokens_in += _count(turn.get("input_tokens"))
            tokens_out += _count(turn.get("output_tokens"))
            cached += _count(turn.get("cached_input_tokens"))
        elif kind == "turn.failed":
            failure = as_str(as_dict(event.get("error")).get("message")) or "turn failed"
        elif kind == "error":
            last_error = as_str(event.get("message"))
        elif kind == "item.completed":
            item = as_dict(event.get("item"))
            if item.get("type") == "agent_message":
                final_text = as_str(item.get("text")) or final_text

    usage = Usage(tokens_in=tokens_in, tokens_out=tokens_out, cache_read_tokens=cached)
    if failure or exit_code != 0:
        message = failure or last_error or f"codex exited {exit_code}"
        return Parsed(classify_message(message), message, final_text, usage)
    if not completed:
        return Parsed(ErrorKind.PROTOCOL_ERROR, "codex exited 0 without a completed turn")
    return Parsed(ErrorKind.OK, "", final_text, usage)
