"""`orch doctor`: one line per check, green or red; non-zero when something needed is missing."""

from __future__ import annotations

import click

from orchestrator.cli.output import console
from orchestrator.doctor import run_checks


@click.command()
@click.option(
    "--online",
    is_flag=True,
    help="Also make one tiny call to the agent's model API (it costs a few tokens).",
)
def doctor(online: bool) -> None:
    """Check git, the database, ORCH_HOME, the agent CLI, the runners and the API rule."""
    checks = run_checks(online=online)
    for check in checks:
        mark = "[green]✔[/]" if check.ok else "[red]✘[/]" if check.needed else "[yellow]![/]"
        console.print(f"{mark} {check.name:<20} {check.detail}")
    failed = [c.name for c in checks if c.fatal]
    if failed:
        console.print(f"[red]not ready:[/] {', '.join(failed)}")
        raise SystemExit(1)
    console.print("[green]ready[/]")
