"""`orch gc`: remove the worktrees of finished tasks once nobody needs to look at them."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import emit_json, notice
from orchestrator.control import retire_worktree
from orchestrator.pipeline.stages import TaskState
from orchestrator.store.base import utcnow

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FINISHED = (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


# Older than a century is older than any task: and a cut-off before year 1 cannot be computed.
MAX_AGE = timedelta(days=36_500)


def parse_age(text: str) -> timedelta:
    """`30m`, `12h`, `7d` as a duration; ValueError otherwise."""
    match = _AGE.match(text.strip())
    if match is None:
        raise ValueError(f"expected an age like 30m, 12h or 7d, got {text!r}")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not seconds <= MAX_AGE.total_seconds():  # also refuses inf and nan
        raise ValueError(f"at most {MAX_AGE.days}d, got {text!r}")
    return timedelta(seconds=seconds)


@click.command()
@click.option(
    "--older-than",
    "age",
    default="7d",
    show_default=True,
    help="Only tasks finished at least this long ago (30m, 12h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the tasks cleaned as JSON.")
@pass_app
def gc(app: AppContext, age: str, as_json: bool) -> None:
    """Remove the worktrees of done, failed and cancelled tasks (their branches stay;
    blocked tasks keep theirs; your own working copy is never touched)."""
    try:
        cutoff = utcnow() - parse_age(age)
    except ValueError as exc:
        raise click.UsageError(f"--older-than: {exc}") from None
    cleaned = []
    for state in FINISHED:
        for task in app.store.list_tasks(state=state):
            if task.updated_at <= cutoff and Path(task.worktree).exists():
                retire_worktree(app.store, app.settings.home, task)
                cleaned.append(task.id)
    if as_json:
        emit_json(cleaned)
        return
    notice(f"removed {len(cleaned)} worktree(s)" + (f": {', '.join(cleaned)}" if cleaned else ""))
