"""`orch demo`: the main job on a fresh machine."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.output import console, notice
from orchestrator.demo.run import DemoOptions, check_options, isolation_notice, run_demo


@click.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep everything in this (new or empty) folder [default: a temporary one].",
)
@click.option(
    "--backend",
    type=click.Choice(["scripted", "claude", "codex", "command"]),
    default="scripted",
    show_default=True,
    help="Who plays the agents; scripted needs no LLM account.",
)
def demo(folder: Path | None, backend: str) -> None:
    """Run the whole pipeline on a sample repository: real tests, staging, merge, watch."""
    options = DemoOptions(folder=folder, backend=backend)
    check_options(options)  # a refusal is the only line on stderr
    message = isolation_notice()
    if message is not None:
        notice(message)
    code = run_demo(options, console)
    raise SystemExit(code)
