"""Printing: JSON documents to stdout, people's output through Rich, notices to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Piped output is not cut at 80 columns: tables stay one row per line for grep and logs.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
notices = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def emit_raw(text: str) -> None:
    """Print text byte for byte (no newline added), as UTF-8."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def notice(message: str) -> None:
    """A line for people, on stderr so it never mixes with machine output."""
    notices.print(message)


STATE_STYLE = {
    "active": "cyan",
    "blocked": "yellow",
    "done": "green",
    "failed": "red",
    "cancelled": "dim",
}
