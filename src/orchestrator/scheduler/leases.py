"""The leases of the jobs a worker runs: renewing them, and stopping what lost its lease.

A worker renews its jobs' leases every third of `ORCH_LEASE_S`. A job that is no longer its
own (cancelled, or taken over by another worker) is stopped; so is one whose lease ran out
without a renewal (the database did not answer): once a lease is over, another worker may
take the job, and this attempt's result could never be committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from orchestrator.jobs.context import JobEnd
from orchestrator.proc import CancelToken
from orchestrator.store import Job, JobStatus, Store


@dataclass
class Running:
    """A job this worker runs."""

    job: Job
    cancel: CancelToken
    future: Future[JobEnd | None]
    # When its lease was last taken or renewed, by this machine's monotonic clock (read
    # before asking the database, so it never runs later than the database's deadline).
    renewed: float


def renew(
    store: Store, worker_id: str, running: dict[int, Running], lease_s: float, asked: float
) -> list[Running]:
    """Renew the leases of the `running` jobs (asked at the monotonic time `asked`); the
    jobs that are not this worker's any more, to be stopped."""
    held = {job_id: r.job.attempt for job_id, r in running.items()}
    still = store.renew_leases(worker_id, held, lease_s)
    for job_id in still:
        running[job_id].renewed = asked
    lost = []
    for job_id in set(held) - still:
        job = store.get_job(job_id)
        if job.attempt == held[job_id] and job.status not in (
            JobStatus.ABANDONED,
            JobStatus.CANCELLED,
        ):
            continue  # it just ended here, between the snapshot and the renewal
        lost.append(running[job_id])
    return lost


def lapsed(running: Iterable[Running], now: float, lease_s: float) -> list[Running]:
    """The running jobs whose lease ran out without a renewal, not yet stopped or ended."""
    return [
        r
        for r in running
        if now > r.renewed + lease_s and not (r.cancel.cancelled or r.future.done())
    ]
