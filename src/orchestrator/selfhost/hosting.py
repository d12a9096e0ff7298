"""Which worker runs the self repo's deploys, and what it does after one.

A self deploy merges the orchestrator's own code, and the service must then restart on it:
only `orch serve`, under its supervisor and holding the self repo, can. So that service's
worker claims those jobs, runs them with the self-deploy step, and restarts when one lands;
every other worker leaves them, says once that they wait, and names them when it drains.
The worker loop asks this one object, and holds no self-deploy branch of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.jobs.context import JobEnd, TakeOver
from orchestrator.selfhost.deploy_job import self_deploy_steps
from orchestrator.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelfHosting:
    """A worker's part in self deploys: run them and restart (`restart` set), or leave them."""

    restart: Callable[[], None] | None = None  # asks the service to restart on new code
    _told: set[str] = field(default_factory=set, compare=False)  # self deploys said to wait

    @property
    def runs_self_deploys(self) -> bool:
        """True in the supervised service: it claims the self repo's deploys."""
        return self.restart is not None

    @property
    def take_over(self) -> TakeOver | None:
        """The steps this worker's jobs hand to the self-hosting layer."""
        return self_deploy_steps if self.runs_self_deploys else None

    def after_job(self, end: JobEnd | None) -> None:
        """A job ended: restart on the merged code when a self deploy asked for it."""
        if end is JobEnd.RESTART and self.restart is not None:
            self.restart()

    def left_for_the_service(self, store: Store) -> list[str]:
        """The tasks whose self deploy this worker leaves to the service (none in it)."""
        return [] if self.runs_self_deploys else store.waiting_self_deploys()

    def tell_waiting(self, store: Store) -> None:
        """Log, once each, the self deploys this worker leaves to the service."""
        for task_id in sorted(set(self.left_for_the_service(store)) - self._told):
            log.warning(
                "task %s: its self deploy waits for `orch serve` (a plain worker never runs it)",
                task_id,
            )
            self._told.add(task_id)
