"""Request bodies, validated before any handler runs (bad input is a 422, never a 500)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from orchestrator.intake import TITLE_MAX
from orchestrator.pipeline.names import REPO_NAME, REPO_NAME_MAX, TASK_ID
from orchestrator.pipeline.stages import OPTIONAL_STAGES, Stage

RepoName = Annotated[
    str, StringConstraints(pattern=f"^{REPO_NAME.pattern}$", max_length=REPO_NAME_MAX)
]
TaskId = Annotated[str, StringConstraints(pattern=f"^{TASK_ID.pattern}$")]
# No text may hold a NUL character (no path, argv or PostgreSQL text column can): said in the
# schema's pattern, so that a request the schema allows is never refused for it.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int, min_length: int = 0) -> object:
    """The constraints of a text field of the API."""
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL)


# The stages a repo may switch off, as the schema's enum (pipeline/stages.py decides).
SkippableStage = Enum(  # type: ignore[misc]
    "SkippableStage", {s.name: s.value for s in Stage if s in OPTIONAL_STAGES}, type=str
)


class ErrorBody(BaseModel):
    """Every error the API answers: one clear message; `detail` lists each invalid field."""

    error: str
    detail: list[str] | None = None


# Documented on every operation (the guard and the error handlers answer them anywhere), so
# that a client, and schemathesis' `--checks all`, know each status and its body.
# Always JSON, also where the success is text (an artifact, a log): so the schema is given
# as such, not as a model (FastAPI would file it under the route's own media type).
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {
        "description": why,
        "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
    }
    for status, why in (
        (400, "Bad input (a path that is not a working copy, say)"),
        (401, "No token, or the wrong one"),
        (403, "A Host that is not this server's, or a write from another origin"),
        (404, "No such task, repo, artifact, job or alert"),
        (409, "The state does not allow it (already cancelled, registered, merged...)"),
        (413, "The body is over ORCH_MAX_BODY_BYTES"),
        (422, "An invalid field; `detail` lists each"),
        (503, "The database does not answer (try again)"),
    )
}


class Body(BaseModel):
    """A request body: unknown fields are refused, and so is text with a NUL character (no
    path, argv or PostgreSQL text column can hold one)."""

    model_config = ConfigDict(extra="forbid")


class TaskCreate(Body):
    """POST /tasks."""

    repo: RepoName
    title: Annotated[str, text(TITLE_MAX, min_length=1)]
    description: Annotated[str, text(100_000)] = ""


class Approval(Body):
    """POST /tasks/{id}/approve: what the person checked or did (optional)."""

    note: Annotated[str, text(10_000)] = ""


class Rejection(Body):
    """POST /tasks/{id}/reject: why, which the next round's developer reads."""

    reason: Annotated[str, text(10_000, min_length=1)]


class RepoCreate(Body):
    """POST /repos: a git working copy on the server's machine, and its commands."""

    name: RepoName
    path: Annotated[str, text(4096, min_length=1)]
    default_branch: Annotated[str, text(255)] | None = None
    test_target: Annotated[str, text(1024)] | None = None
    test_command: Annotated[str, text(4096)] | None = None
    staging_command: Annotated[str, text(4096)] | None = None
    deploy_command: Annotated[str, text(4096)] | None = None
    health_url: str | None = Field(default=None, max_length=2048, pattern=r"^(https?://[^\x00]*)?$")
    setup_command: Annotated[str, text(4096)] | None = None
    junit_path: Annotated[str, text(1024)] | None = None
    skip_stages: list[SkippableStage] = Field(default_factory=list, max_length=8)
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
