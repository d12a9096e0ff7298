"""The jobs a worker runs, one slot each, and the hand-off that keeps a slot busy.

When a job ends, its own thread runs the next runnable job in the same slot, before the loop
even wakes: the next stage does not wait for the loop to come round, finish what it was doing
(a claim, a poll) and win the interpreter from the running jobs. A verdict claims that job in
its own transaction (`Store.finish_job`); after any other end, the thread claims it then.
Each job has a future of its own, resolved by the thread when that job ends, so the loop
reaps and reports every job as before, whichever thread ran it.

A hand-off claims while the ending job still holds its slot, so the loop never claims for
the same slot meanwhile: at no moment does the worker hold more than its slots' worth of
jobs that are not ending.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from orchestrator.jobs.context import JobEnd
from orchestrator.proc import CancelToken
from orchestrator.scheduler.leases import Running
from orchestrator.store import Job

# The ends after which a slot claims the next job. Not after a cancel (the task was
# cancelled, or the worker stops), a restart (the service is going down), or a fault in the
# database or our own code (None): the loop looks at those first.
HANDS_OFF = frozenset({JobEnd.VERDICT, JobEnd.DEFERRED, JobEnd.BLOCKED})


class Slots:
    """The worker's running jobs by id, under one lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._running: dict[int, Running] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._running)

    def free(self) -> int:
        """How many jobs the loop may claim now."""
        with self._lock:
            return self.size - len(self._running)

    def add(self, job: Job, asked: float) -> Running:
        """Take a slot for a claimed job (`asked`: when its lease was asked for)."""
        running = Running(job, CancelToken(), Future(), asked)
        with self._lock:
            self._running[job.id] = running
        return running

    def reap(self) -> list[Running]:
        """The jobs that ended, out of their slots."""
        with self._lock:
            done = [job_id for job_id, r in self._running.items() if r.future.done()]
            return [self._running.pop(job_id) for job_id in done]

    def ids(self) -> set[int]:
        """The ids of the jobs in the slots."""
        with self._lock:
            return set(self._running)

    def snapshot(self) -> dict[int, Running]:
        """The slots as they are now."""
        with self._lock:
            return dict(self._running)


def run_in_slot(
    first: Running,
    run: Callable[[Job, CancelToken], JobEnd | None],
    hand_off: Callable[[JobEnd | None], Running | None],
    ended: Callable[[], None],
) -> None:
    """Run a job in its slot, then each job `hand_off` gives the slot after it (after any
    end: a verdict may have claimed the next job already), until none is: each job's future
    is resolved once the next one (if any) holds the slot."""
    running: Running | None = first
    while running is not None:
        end: JobEnd | None = None
        following: Running | None = None
        try:
            end = run(running.job, running.cancel)
            following = hand_off(end)
        finally:
            running.future.set_result(end)
            ended()
        running = following
