"""How an agent call ended, once the orchestrator knows whether the artifact was written.

A CLI that refused a write still exits 0 and says "success": only the artifact's absence shows
that something went wrong, and only the stream says what. This turns that into the kind and
the words a person needs: the denial named (`permission_denied`, never retried), or a plain
`no_artifact` quoting the agent's last failed tool call and the end of its final message.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator.transport.types import ErrorKind, Parsed

# Enough of a final message to see what the agent thought it had done, short enough for an
# alert line.
QUOTE_CHARS = 300
# A command or a tool's error inside such a message.
SHORT = 200


def settle(parsed: Parsed, artifact: Path, written: bool) -> Parsed:
    """The call's outcome: `parsed` itself unless the agent "succeeded" without its artifact."""
    if parsed.kind is not ErrorKind.OK or written:
        return parsed
    if parsed.denials:
        # A denial of the artifact itself says most; any other one still explains the miss.
        about = [d for d in parsed.denials if d.path == str(artifact) or str(artifact) in d.message]
        denial = (about or list(parsed.denials))[0]
        return replace(parsed, kind=ErrorKind.PERMISSION_DENIED, message=denial.message)
    message = f"exited 0 without writing {artifact.name}"
    if parsed.tool_error:
        message += f"; its last failed tool call said: {quote(parsed.tool_error)}"
    if parsed.final_text.strip():
        message += f"; its final message ends: {quote(parsed.final_text)}"
    else:
        message += "; it gave no final message"
    return replace(parsed, kind=ErrorKind.NO_ARTIFACT, message=message)


def quote(text: str) -> str:
    """`text` on one line, its end kept when it is long, in quotes."""
    return f"“{one_line(text, QUOTE_CHARS, keep_end=True)}”"


def one_line(text: str, limit: int, *, keep_end: bool = False) -> str:
    """`text` with its whitespace folded, cut to `limit` characters at its end or its start."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return "…" + flat[-(limit - 1) :] if keep_end else flat[: limit - 1] + "…"
