"""What the transport is asked to do, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypedDict


class ErrorKind(StrEnum):
    """How an agent call ended."""

    OK = "ok"
    NO_ARTIFACT = "no_artifact"  # exited 0 without writing its artifact
    AGENT_ERROR = "agent_error"  # the agent said it failed, or exited non-zero
    TIMEOUT = "timeout"
    AUTH = "auth"  # not logged in, bad key: retrying cannot help
    RATE_LIMITED = "rate_limited"
    CLI_MISSING = "cli_missing"  # the agent's executable is not on PATH: retrying cannot help
    SPAWN_FAILED = "spawn_failed"
    PROTOCOL_ERROR = "protocol_error"  # its output did not follow the backend's format
    # Its CLI refused an action it needed (a write outside its permissions or sandbox): the
    # same call would be refused again, so retrying cannot help.
    PERMISSION_DENIED = "permission_denied"
    CANCELLED = "cancelled"  # stopped by us (task cancelled, worker stopping): not a failure

    @property
    def retryable(self) -> bool:
        """False for the kinds a retry cannot fix."""
        return self not in (
            ErrorKind.AUTH,
            ErrorKind.CLI_MISSING,
            ErrorKind.PERMISSION_DENIED,
            ErrorKind.OK,
        )


@dataclass(frozen=True)
class AgentRequest:
    """One agent call: who, where, and the prompt it reads on stdin."""

    role: str
    stage: str
    task_id: str
    round: int
    worktree: Path
    artifact_dir: Path
    artifact_path: Path
    prompt: str
    log_path: Path
    timeout_s: float

    def variables(self) -> dict[str, str]:
        """The task variables every agent gets in its environment."""
        return {
            "ORCH_TASK_ID": self.task_id,
            "ORCH_STAGE": self.stage,
            "ORCH_ROLE": self.role,
            "ORCH_ROUND": str(self.round),
            "ORCH_WORKTREE": str(self.worktree),
            "ORCH_ARTIFACT_DIR": str(self.artifact_dir),
            "ORCH_ARTIFACT_PATH": str(self.artifact_path),
        }

    def placeholders(self) -> dict[str, str]:
        """The values of an ORCH_AGENT_COMMAND template's placeholders."""
        return {
            "role": self.role,
            "stage": self.stage,
            "task_id": self.task_id,
            "round": str(self.round),
            "worktree": str(self.worktree),
            "artifact_path": str(self.artifact_path),
        }


class Spent(TypedDict):
    """The usage columns a job and an accounting row share."""

    tokens_in: int | None
    tokens_out: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: float | None
    turns: int | None


@dataclass(frozen=True)
class Usage:
    """Tokens and money an agent call spent (None: the backend does not say)."""

    tokens_in: int | None = None
    tokens_out: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    session_id: str | None = None

    def spent(self) -> Spent:
        """What the records of a call (its job, its accounting row) store of it."""
        return {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": self.cost_usd,
            "turns": self.num_turns,
        }


@dataclass(frozen=True)
class Denial:
    """An action the agent's CLI refused it, in words a person can act on."""

    path: str  # the file it was about ("" when the CLI does not say)
    message: str  # "Claude Code denied Write to /x (permission mode acceptEdits)"


@dataclass(frozen=True)
class Parsed:
    """What a backend read from its agent's output."""

    kind: ErrorKind
    message: str = ""
    final_text: str = ""
    usage: Usage = field(default_factory=Usage)
    # What went wrong on the way, to explain a missing artifact: refused actions, and the
    # last tool call that failed (its output, shortened).
    denials: tuple[Denial, ...] = ()
    tool_error: str = ""


@dataclass(frozen=True)
class AgentResult:
    """The outcome of one agent call, as stored on the job."""

    backend: str
    kind: ErrorKind
    message: str  # the agent's own words when it failed
    exit_code: int | None
    final_text: str
    usage: Usage
    duration_s: float
    log_path: Path

    @property
    def ok(self) -> bool:
        """The agent exited cleanly and wrote its artifact."""
        return self.kind is ErrorKind.OK
