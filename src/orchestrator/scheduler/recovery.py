"""Crash recovery: jobs whose worker died are killed (on this host) and their stages re-queued.

A running job records its worker, host, process group, the leader's start time and the
marker every descendant carries. A job is taken over when its worker is provably dead (same
host, process gone) or when its lease ran out. Processes are killed only on the host that
recorded them, and only while the recorded leader is still the same process (a reused pid is
never killed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.proc import process_alive, terminate_group
from orchestrator.store import Job, Store
from orchestrator.store.base import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who this worker is."""

    worker_id: str
    host: str


def _worker_dead(store: Store, job: Job) -> bool:
    if job.worker_id is None:
        return True
    worker = store.get_worker(job.worker_id)
    if worker is None or worker.stopped_at is not None:
        return True
    return not process_alive(worker.pid, worker.proc_started_at)


def take_over(store: Store, me: Identity, grace_s: float) -> list[Job]:
    """Abandon and re-queue every running job whose worker is gone; returns the new jobs."""
    now = utcnow()
    requeued: list[Job] = []
    # A deploy job whose self deploy is pending belongs to the restart: the restarted
    # service completes it (selfhost/boot.py); taking it over would merge and restart again.
    restarting = {deploy.job_id for deploy in store.self_deploys("pending")}
    for job in store.running_jobs():
        if job.worker_id == me.worker_id or job.id in restarting:
            continue
        same_host = job.host == me.host
        expired = job.lease_expires_at is not None and job.lease_expires_at < now
        if not expired and not (same_host and _worker_dead(store, job)):
            continue
        if same_host:
            marker = job.marker or f"{job.worker_id}.{job.id}.{job.attempt}"
            if terminate_group(job.pgid, job.proc_started_at, marker, grace_s):
                log.warning(
                    "killed the processes of job %s left by worker %s", job.id, job.worker_id
                )
        fresh = store.abandon_job(job, f"worker {job.worker_id} is gone; re-queued")
        if fresh is not None:
            log.warning(
                "job %s (%s of task %s) re-queued as job %s",
                job.id,
                job.stage,
                job.task_id,
                fresh.id,
            )
            requeued.append(fresh)
    return requeued
