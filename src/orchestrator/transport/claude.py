"""The `claude` backend: Claude Code in print mode, reading its stream-json output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from orchestrator.transport.classify import classify
from orchestrator.transport.types import ErrorKind, Parsed, Usage

ARGV = [
    "claude",
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--permission-mode",
    "acceptEdits",
]


def json_lines(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    """The JSON objects among `lines`; anything else (stderr noise) is skipped."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


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
    when that event was an API error it gave up on.
    """
    result: dict[str, Any] | None = None
    error_type: object = None
    for event in json_lines(lines):
        if event.get("type") == "result":
            result = event
        elif event.get("type") == "assistant":
            error_type = event.get("error")  # only the last assistant event's counts
    if result is None:
        if exit_code == 0:
            return Parsed(ErrorKind.PROTOCOL_ERROR, "claude exited 0 without a result line")
        return Parsed(ErrorKind.AGENT_ERROR, f"claude exited {exit_code} without a result line")

    raw_usage = as_dict(result.get("usage"))
    cost = result.get("total_cost_usd")
    usage = Usage(
        tokens_in=_int(raw_usage.get("input_tokens")),
        tokens_out=_int(raw_usage.get("output_tokens")),
        cache_read_tokens=_int(raw_usage.get("cache_read_input_tokens")),
        cache_write_tokens=_int(raw_usage.get("cache_creation_input_tokens")),
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        num_turns=_int(result.get("num_turns")),
        session_id=as_str(result.get("session_id")) or None,
    )
    text = as_str(result.get("result"))
    if result.get("is_error") or result.get("subtype", "success") != "success" or exit_code != 0:
        message = text or str(result.get("subtype") or f"exit {exit_code}")
        kind = classify(message, status=result.get("api_error_status"), error_type=error_type)
        return Parsed(kind, message, text, usage)
    return Parsed(ErrorKind.OK, "", text, usage)
