"""An agent's stream, for people: Claude Code's stream-json and Codex's JSONL events as one
readable line per turn (what the agent said, which tool it called, what failed), instead of
raw JSON. Any line that is not such an event (a command agent's own output, a suite's) is
kept as it is. Pure, so that the log a person follows and the tests read it the same way.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from orchestrator.transport.claude import as_dict, as_str

WIDTH = 300  # a turn's text is cut at this many characters


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= WIDTH else flat[: WIDTH - 1] + "…"


def _tool_input(name: str, given: dict[str, Any]) -> str:
    """The part of a tool call a person wants to see: the file, the command, the pattern."""
    for key in ("file_path", "path", "command", "pattern", "url", "query", "description"):
        if isinstance(given.get(key), str):
            return f"{name} {given[key]}"
    return name


def _claude(event: dict[str, Any]) -> list[str]:
    kind = event.get("type")
    if kind == "system" and event.get("subtype") == "init":
        return [f"· session started ({as_str(event.get('model')) or 'model'})"]
    if kind == "result":
        spent = event.get("total_cost_usd")
        cost = f", ${spent:.4f}" if isinstance(spent, int | float) else ""
        return [f"· result: {as_str(event.get('subtype')) or 'done'}{cost}"]
    lines = []
    for block in as_dict(event.get("message")).get("content") or []:
        block = as_dict(block)
        if block.get("type") == "text" and as_str(block.get("text")).strip():
            lines.append(f"agent: {_cut(as_str(block['text']))}")
        elif block.get("type") == "tool_use":
            name = as_str(block.get("name")) or "tool"
            lines.append(f"→ {_cut(_tool_input(name, as_dict(block.get('input'))))}")
        elif block.get("type") == "tool_result" and block.get("is_error") is True:
            content = block.get("content")
            lines.append(f"✗ {_cut(content if isinstance(content, str) else 'tool failed')}")
    return lines


def _codex(event: dict[str, Any]) -> list[str]:
    kind = event.get("type")
    item = as_dict(event.get("item"))
    if kind == "thread.started":
        return ["· session started"]
    if kind == "turn.completed":
        return ["· turn completed"]
    if kind in ("turn.failed", "error"):
        message = as_str(as_dict(event.get("error")).get("message")) or as_str(event.get("message"))
        return [f"✗ {_cut(message or kind)}"]
    if kind == "item.completed" and item.get("type") == "agent_message":
        return [f"agent: {_cut(as_str(item.get('text')))}"]
    if kind == "item.started" and item.get("type") == "command_execution":
        return [f"→ {_cut(as_str(item.get('command')))}"]
    if kind == "item.completed" and item.get("type") == "command_execution":
        if item.get("status") == "failed":
            return [f"✗ {_cut(as_str(item.get('aggregated_output')) or 'command failed')}"]
        return []
    if kind == "item.completed" and item.get("type") == "file_change":
        changes = [as_str(as_dict(c).get("path")) for c in item.get("changes") or []]
        return [f"→ edit {', '.join(p for p in changes if p) or 'files'}"]
    return []


def readable(line: str) -> list[str]:
    """What a person reads for one line of an agent's output (none for bookkeeping events)."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return [line]
    try:
        event = json.loads(text)
    except ValueError:
        return [line]
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return [line]
    kind = event["type"]
    if kind in ("system", "assistant", "user", "result", "stream_event", "rate_limit_event"):
        return _claude(event)
    if kind.startswith(("thread.", "turn.", "item.")) or kind == "error":
        return _codex(event)
    return [line]


class TurnReader:
    """Feeds of raw output (chunks, cut anywhere) in, readable lines out."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, text: str) -> str:
        """The readable form of every whole line received so far."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        return "".join(f"{shown}\n" for line in lines for shown in readable(line))

    def flush(self) -> str:
        """The readable form of a last line without its newline."""
        rest, self._partial = self._partial, ""
        return "".join(f"{shown}\n" for shown in readable(rest)) if rest else ""


class ReadableBytes:
    """A TurnReader over bytes: UTF-8 decoded across the chunks' cuts, readable lines out."""

    def __init__(self) -> None:
        self._turns = TurnReader()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> bytes:
        """The readable form of every whole line received so far."""
        return self._turns.feed(self._decoder.decode(data)).encode("utf-8")

    def flush(self) -> bytes:
        """The rest, at the end of the output."""
        text = self._turns.feed(self._decoder.decode(b"", final=True)) + self._turns.flush()
        return text.encode("utf-8")
