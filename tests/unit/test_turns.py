"""An agent's stream as people read it (transport/turns.py): Claude Code's and Codex's events
as one line per turn, anything else as it is, whatever the chunks."""

from __future__ import annotations

import json

from orchestrator.transport.turns import TurnReader, readable

CLAUDE = [
    {"type": "system", "subtype": "init", "model": "claude-sonnet-4", "permissionMode": "x"},
    {
        "type": "assistant",
        "message": {
            "content": [
                {"type": "text", "text": "I will add the flag."},
                {"type": "tool_use", "name": "Edit", "input": {"file_path": "cli.py"}},
            ]
        },
    },
    {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "is_error": True, "content": "denied"}]},
    },
    {"type": "result", "subtype": "success", "total_cost_usd": 0.0123},
]
CODEX = [
    {"type": "thread.started", "thread_id": "t"},
    {"type": "item.started", "item": {"type": "command_execution", "command": "pytest -q"}},
    {"type": "item.completed", "item": {"type": "command_execution", "status": "completed"}},
    {"type": "item.completed", "item": {"type": "agent_message", "text": "Done:\n  tests pass"}},
    {"type": "turn.failed", "error": {"message": "stream disconnected"}},
]


def lines_of(events: list[dict[str, object]]) -> list[str]:
    return [shown for event in events for shown in readable(json.dumps(event))]


def test_claude_codes_turns_read_as_lines() -> None:
    assert lines_of(CLAUDE) == [
        "· session started (claude-sonnet-4)",
        "agent: I will add the flag.",
        "→ Edit cli.py",
        "✗ denied",
        "· result: success, $0.0123",
    ]


def test_codex_turns_read_as_lines() -> None:
    assert lines_of(CODEX) == [
        "· session started",
        "→ pytest -q",
        "agent: Done: tests pass",
        "✗ stream disconnected",
    ]


def test_other_output_is_kept_as_it_is() -> None:
    for line in ("analyst line 0", "{not json}", '{"no": "type"}', "", "  indented"):
        assert readable(line) == [line]


def test_a_stream_cut_anywhere_reads_the_same() -> None:
    raw = "".join(json.dumps(e) + "\n" for e in CLAUDE) + "plain tail"
    whole = TurnReader()
    expected = whole.feed(raw) + whole.flush()
    for size in (1, 7, 64):
        reader = TurnReader()
        got = "".join(reader.feed(raw[i : i + size]) for i in range(0, len(raw), size))
        assert got + reader.flush() == expected
    assert expected.endswith("plain tail\n") and "→ Edit cli.py\n" in expected
