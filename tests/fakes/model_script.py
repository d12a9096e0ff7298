"""What a scripted local model says: the one stand-in allowed, the model behind a real agent CLI.

A test gives a model server a `Script`: a function from the `Exchange` the CLI sent (the
prompt of the conversation, how many times the model already answered in it, the results of
the tools it asked for) to the `Reply` the model gives. Each server (`anthropic_server`,
`responses_server`) turns a reply into its own wire format (SSE events, tool-call items), so
one script drives Claude Code and Codex alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exchange:
    """One model call the CLI made, as the script sees it."""

    prompt: str  # the text of the conversation's first user message (the orchestrator's prompt)
    turn: int  # how many times the model already answered in this conversation (0: first)
    tool_results: tuple[str, ...] = ()  # the outputs of the tools of the model's last answer
    model: str = ""
    main: bool = True  # False for the CLI's own side calls (titles, quota probes, summaries)

    @property
    def artifact_path(self) -> str:
        """The artifact path the orchestrator's prompt names (empty when it names none)."""
        found = ARTIFACT_PATH.findall(self.prompt)
        return found[-1] if found else ""

    @property
    def task_id(self) -> str:
        """The task the orchestrator's prompt is about (empty when it names none)."""
        found = TASK.search(self.prompt)
        return found.group(1) if found else ""

    @property
    def role(self) -> str:
        """The role the orchestrator's prompt gives the agent (empty when it gives none)."""
        found = ROLE.search(self.prompt)
        return found.group(1).lower() if found else ""


# The prompts end with the artifact's path alone on an indented line, and begin with "You are
# the **ROLE**"; scripts find both (the last such path: earlier artifacts may quote others).
ARTIFACT_PATH = re.compile(r"^ {4}(/\S+\.md)[ \t]*$", re.MULTILINE)
ROLE = re.compile(r"\bYou are the \**(\w+)", re.IGNORECASE)
TASK = re.compile(r"^## The task \(([0-9a-z]+), round \d+\)", re.MULTILINE)


@dataclass(frozen=True)
class Text:
    """The model answers with text only: the conversation ends."""

    text: str


@dataclass(frozen=True)
class Write:
    """The model writes a whole file (Claude Code: Write; Codex: a shell command or patch)."""

    path: str
    content: str


@dataclass(frozen=True)
class Edit:
    """The model replaces `old` by `new` in a file (Claude Code: Edit; Codex: apply_patch)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Shell:
    """The model runs a shell command (Claude Code: Bash; Codex: its shell tool)."""

    command: str


@dataclass(frozen=True)
class ApiError:
    """The API answers with an HTTP error instead of a message (401, 429, 500, 529...)."""

    status: int
    message: str = "scripted error"


@dataclass(frozen=True)
class Stall:
    """The API accepts the request and then says nothing for `seconds`."""

    seconds: float = 3600.0


Reply = Text | Write | Edit | Shell | ApiError | Stall
Script = Callable[[Exchange], Reply]


@dataclass
class Served:
    """What a server answered, for the tests' assertions (usage it reported, calls it saw)."""

    exchanges: list[Exchange] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
