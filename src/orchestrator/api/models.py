"""Request bodies, validated before any handler runs (bad input is a 422, never a 500)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from orchestrator.intake import TITLE_MAX
from orchestrator.pipeline.names import REPO_NAME, TASK_ID

RepoName = Annotated[str, StringConstraints(pattern=f"^{REPO_NAME.pattern}$")]
TaskId = Annotated[str, StringConstraints(pattern=f"^{TASK_ID.pattern}$")]


class Body(BaseModel):
    """A request body: unknown fields are refused, and so is text with a NUL character (no
    path, argv or PostgreSQL text column can hold one)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and "\x00" in text:
                raise ValueError("text must not contain a NUL character")
        return value


class TaskCreate(Body):
    """POST /tasks."""

    repo: RepoName
    title: Annotated[str, StringConstraints(min_length=1, max_length=TITLE_MAX)]
    description: Annotated[str, StringConstraints(max_length=100_000)] = ""


class RepoCreate(Body):
    """POST /repos: a git working copy on the server's machine, and its commands."""

    name: RepoName
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    default_branch: str | None = Field(default=None, max_length=255)
    test_target: str | None = Field(default=None, max_length=1024)
    test_command: str | None = Field(default=None, max_length=4096)
    staging_command: str | None = Field(default=None, max_length=4096)
    deploy_command: str | None = Field(default=None, max_length=4096)
    health_url: str | None = Field(default=None, max_length=2048)
    setup_command: str | None = Field(default=None, max_length=4096)
    skip_stages: list[str] = Field(default_factory=list, max_length=8)
    # A JSON boolean only: "yes", 1 or "false" read as booleans would say what was not meant.
    self_repo: StrictBool = Field(default=False, alias="self")

    @field_validator("path", mode="after")
    @classmethod
    def _expandable(cls, value: str) -> str:
        try:
            Path(value).expanduser()  # `~name` of no such user raises RuntimeError
        except RuntimeError:
            raise ValueError(f"cannot expand {value!r}: no such user") from None
        return value
