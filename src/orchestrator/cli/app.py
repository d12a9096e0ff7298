"""The `orch` command group; each area of commands lives in its own module."""

from __future__ import annotations

import click

from orchestrator import __version__
from orchestrator.cli.context import AppContext
from orchestrator.cli.db import db
from orchestrator.cli.demo import demo
from orchestrator.cli.doctor import doctor
from orchestrator.cli.gc import gc
from orchestrator.cli.logs import logs
from orchestrator.cli.repo import repo
from orchestrator.cli.serve import serve
from orchestrator.cli.status import queue, status, workers
from orchestrator.cli.task import task
from orchestrator.cli.watch import watch
from orchestrator.cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="orch")
@click.pass_context
def orch(ctx: click.Context) -> None:
    """orchestrator: a delivery pipeline for coding agents.

    Tasks on git repositories go through analysis, design, development, review, testing,
    staging, deploy and post-deploy watch. Agents do the judgement; code does the verdicts.
    """
    app = ctx.ensure_object(AppContext)
    ctx.call_on_close(app.close)


orch.add_command(repo)
orch.add_command(task)
orch.add_command(db)
orch.add_command(demo)
orch.add_command(doctor)
orch.add_command(gc)
orch.add_command(worker)
orch.add_command(serve)
orch.add_command(queue)
orch.add_command(status)
orch.add_command(workers)
task.add_command(watch)
task.add_command(logs)
