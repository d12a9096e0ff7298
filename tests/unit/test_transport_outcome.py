"""A call that "succeeded" without its artifact: the denial named, or the agent's last words."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.transport import claude, codex
from orchestrator.transport.outcome import QUOTE_CHARS, settle
from orchestrator.transport.types import Denial, ErrorKind, Parsed

ARTIFACT = Path("/home/u/.orch/tasks/abc/02-analysis.md")


def test_a_written_artifact_keeps_the_call_ok_whatever_was_denied_on_the_way() -> None:
    parsed = Parsed(ErrorKind.OK, denials=(Denial("", "Claude Code denied Bash `make`"),))
    assert settle(parsed, ARTIFACT, written=True) is parsed


def test_a_failed_call_is_left_as_the_backend_read_it() -> None:
    parsed = Parsed(ErrorKind.RATE_LIMITED, "429")
    assert settle(parsed, ARTIFACT, written=False) is parsed


def test_a_denied_write_of_the_artifact_is_permission_denied_and_not_retried() -> None:
    other = Denial("/etc/x", "Claude Code denied Write to /etc/x (permission mode acceptEdits)")
    mine = Denial(str(ARTIFACT), f"Claude Code denied Write to {ARTIFACT} (permission mode x)")
    settled = settle(Parsed(ErrorKind.OK, denials=(other, mine)), ARTIFACT, written=False)
    assert settled.kind is ErrorKind.PERMISSION_DENIED and not settled.kind.retryable
    assert settled.message == mine.message


def test_any_denial_explains_a_missing_artifact_when_none_is_about_it() -> None:
    denial = Denial("", "Codex's sandbox refused `touch /srv/x`: Read-only file system")
    settled = settle(Parsed(ErrorKind.OK, denials=(denial,)), ARTIFACT, written=False)
    assert (settled.kind, settled.message) == (ErrorKind.PERMISSION_DENIED, denial.message)


def test_no_artifact_quotes_the_end_of_the_final_message_on_one_line() -> None:
    final = "I looked around.\n\n" + "x" * 1000 + " and I am done now."
    settled = settle(Parsed(ErrorKind.OK, final_text=final), ARTIFACT, written=False)
    assert settled.kind is ErrorKind.NO_ARTIFACT and settled.kind.retryable
    assert settled.message.startswith("exited 0 without writing 02-analysis.md")
    assert settled.message.endswith("and I am done now.”") and "\n" not in settled.message
    assert len(settled.message) < QUOTE_CHARS + 100


def test_no_artifact_names_the_last_failed_tool_call_and_a_missing_final_message() -> None:
    parsed = Parsed(ErrorKind.OK, tool_error="File has not been read yet.")
    message = settle(parsed, ARTIFACT, written=False).message
    assert "its last failed tool call said: “File has not been read yet.”" in message
    assert message.endswith("it gave no final message")


def _stream(*events: dict[str, object]) -> list[str]:
    return [json.dumps(event) + "\n" for event in events]


def test_claude_reads_permission_denials_in_the_mode_the_cli_reports() -> None:
    lines = _stream(
        {"type": "system", "subtype": "init", "permissionMode": "default"},
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {"type": "tool_result", "is_error": True, "content": "needs permission"},
                ],
            },
        },
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "Done.",
            "permission_denials": [
                {"tool_name": "Write", "tool_use_id": "t1", "tool_input": {"file_path": "/a.md"}},
                {"tool_name": "Bash", "tool_input": {"command": "git  commit\n-m x"}},
                "not an object",
            ],
        },
    )
    parsed = claude.parse(lines, 0)
    assert parsed.kind is ErrorKind.OK and parsed.tool_error == "needs permission"
    assert [d.message for d in parsed.denials] == [
        "Claude Code denied Write to /a.md (permission mode default)",
        "Claude Code denied Bash `git commit -m x` (permission mode default)",
        "Claude Code denied a tool (permission mode default)",
    ]
    assert parsed.denials[0].path == "/a.md"


def test_a_cli_that_dies_before_its_stream_says_why_with_its_last_stderr_line() -> None:
    lines = ["Warning: something\n", "Not inside a trusted directory.\n"]
    for backend in (claude, codex):
        parsed = backend.parse(lines, 1)
        assert parsed.kind is ErrorKind.AGENT_ERROR
        assert parsed.message.endswith("exited 1: Not inside a trusted directory.")
