"""Role prompts: one Markdown file per role, framed with the task, its artifacts and feedback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from orchestrator.pipeline.stages import LLM_STAGES, STAGE_TRANSITIONS, StageSpec

ROLES = tuple(role.value for role in LLM_STAGES)
SUMMARIZER = "summarizer"  # call site A7: not a stage's producer, and it writes no verdict


def verdict_lines(spec: StageSpec) -> tuple[str, str]:
    """What a stage's agent must write when its work passes and when it does not: the exact
    verdict lines of the stage table's row (its gate reads nothing else)."""
    failing = spec.fail_lines
    if spec.verdict_keys == ("result", "status", "tests_failed"):  # a report says how many
        failing = (*failing, "tests_failed: <how many failed>")
    return "\n".join(spec.pass_lines), "\n".join(failing)


VERDICTS: Mapping[str, tuple[str, str]] = {
    role.value: verdict_lines(STAGE_TRANSITIONS[stage]) for role, stage in LLM_STAGES.items()
}


def _indent(lines: str) -> str:
    return "\n".join("    " + line for line in lines.splitlines())


@dataclass(frozen=True)
class PromptContext:
    """Everything a prompt is rendered from."""

    role: str
    task_id: str
    round: int
    branch: str
    base_branch: str
    task_text: str  # 01-task.md
    artifacts: Sequence[tuple[str, str]]  # (name, text) of the earlier artifacts, in order
    artifact_path: str
    feedback: tuple[str, str] | None = None  # (name, text) of what sent the task back
    summary: str | None = None  # an optional short note on the feedback, above it
    base_note: str | None = None  # how the branch was brought up to its base, if it was


@cache
def role_text(role: str) -> str:
    """The role's own Markdown prompt, shipped in the package."""
    if role not in (*ROLES, SUMMARIZER):
        raise ValueError(f"no prompt for role {role!r}")
    return files(__package__).joinpath(f"{role}.md").read_text(encoding="utf-8")


def render_prompt(context: PromptContext) -> str:
    """The full prompt an agent reads on stdin."""
    parts = [
        role_text(context.role).rstrip(),
        f"## The task ({context.task_id}, round {context.round})\n\n"
        f"Branch `{context.branch}`, based on `{context.base_branch}`.\n\n"
        + context.task_text.strip(),
    ]
    for name, text in context.artifacts:
        parts.append(f"## Earlier artifact: {name}\n\n{text.strip()}")
    if context.feedback is not None:
        name, text = context.feedback
        note = f"{context.summary.strip()}\n\n" if context.summary else ""
        parts.append(
            f"## Feedback: why round {context.round} exists\n\n"
            f"The previous round was sent back by {name}. {note}"
            f"The report, whole:\n\n{text.strip()}"
        )
    if context.base_note is not None:
        parts.append(f"## Your branch and its base\n\n{context.base_note.strip()}")
    passing, failing = VERDICTS[context.role]
    parts.append(
        "## Your artifact\n\n"
        f"Write your artifact, in Markdown, to this file:\n\n    {context.artifact_path}\n\n"
        "End it with the verdict, each line on its own, starting at column 0, outside any code "
        f"block. When the work passes:\n\n{_indent(passing)}\n\nWhen it does not:\n\n"
        f"{_indent(failing)}\n\n"
        "Only these lines decide what happens next; everything else is for people."
    )
    return "\n\n".join(parts) + "\n"


def render_summary_prompt(report_name: str, report: str, artifact_path: str) -> str:
    """The failure summarizer's prompt (A7): its instructions, the report, where to write."""
    return (
        f"{role_text(SUMMARIZER).rstrip()}\n\n"
        f"## The report that sent the task back: {report_name}\n\n{report.strip()}\n\n"
        f"## Your note\n\nWrite it to this file:\n\n    {artifact_path}\n"
    )
