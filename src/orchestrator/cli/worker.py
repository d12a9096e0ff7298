"""`orch worker`: run the scheduler."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import notice
from orchestrator.errors import OrchError
from orchestrator.scheduler import Worker


def configure_logging(verbose: bool) -> None:
    """Log lines on stderr, one per event, timestamped."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


@click.command()
@click.option(
    "--drain",
    is_flag=True,
    help="Exit 0 once no task can make progress (1 when only self deploys are left).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@pass_app
def worker(app: AppContext, drain: bool, verbose: bool) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM stop cleanly; running jobs are re-queued)."""
    configure_logging(verbose)
    runner = Worker(app.store, app.settings, drain=drain)

    def stop(signum: int, _frame: FrameType | None) -> None:
        notice(f"worker: {signal.Signals(signum).name}, stopping (running jobs are re-queued)")
        runner.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    notice(
        f"worker {runner.identity.worker_id}: up to {app.settings.max_parallel_jobs} jobs at once, "
        f"agents: {app.settings.agent_backend}" + (" (drain)" if drain else "")
    )
    runner.run()
    counts = app.store.counts().by_state
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no tasks"
    notice(f"worker stopped: {summary}")
    if runner.stranded:
        raise OrchError(
            f"drained, but the self deploy of task {', '.join(runner.stranded)} waits: only "
            "`orch serve` runs it (it restarts on the merged code)"
        )
