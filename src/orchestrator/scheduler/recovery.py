"""Crash recovery: jobs whose worker died are killed (on this host) and their stages re-queued.

A running job records its worker, host, process group, the leader's start time and the
marker every descendant carries. A job is taken over when its worker is provably dead (same
host, process gone) or when its lease ran out (by the database's clock). Processes are
killed only on the host that recorded them, and only while the recorded leader is still the
same process (a reused pid is never killed).

A job reclaimed from another machine leaves its processes running where they were: the
other machine cannot reach them. So every worker also sweeps the ended (abandoned or
cancelled) jobs recorded on its own host, at start-up and with each heartbeat, and kills
what is left of them: nothing of a dead worker survives once any worker runs on its host.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from orchestrator.proc import process_alive, terminate_group
from orchestrator.store import Job, SelfDeployState, Store

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


def _marker(job: Job) -> str:
    return job.marker or f"{job.worker_id}.{job.id}.{job.attempt}"


def take_over(
    store: Store, me: Identity, grace_s: float, running: Collection[int] = ()
) -> list[Job]:
    """Abandon and re-queue every running job whose worker is gone; returns the new jobs.

    `running` are the jobs this worker is running now. One of its own jobs that it no
    longer runs, once its lease ran out, was left behind (its failure could not be
    recorded): it is re-queued like a dead worker's, or `--drain` would wait for it forever.
    """
    now = store.now()
    requeued: list[Job] = []
    # A deploy job whose self deploy is pending belongs to the restart: the restarted
    # service completes it (selfhost/boot.py); taking it over would merge and restart again.
    restarting = {deploy.job_id for deploy in store.self_deploys(SelfDeployState.PENDING)}
    for job in store.running_jobs():
        if job.id in restarting or job.id in running:
            continue
        same_host = job.host == me.host
        expired = job.lease_expires_at is not None and job.lease_expires_at < now
        if job.worker_id == me.worker_id:
            if not expired:
                continue  # claimed a moment ago, and not yet in `running`
        elif not expired and not (same_host and _worker_dead(store, job)):
            continue
        if same_host and terminate_group(job.pgid, job.proc_started_at, _marker(job), grace_s):
            log.warning("killed the processes of job %s left by worker %s", job.id, job.worker_id)
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
    sweep_strays(store, me, grace_s)
    return requeued


def sweep_strays(store: Store, me: Identity, grace_s: float) -> None:
    """Kill what still runs of the ended jobs recorded on this host (see the docstring)."""
    for job in store.stray_processes(me.host):
        if terminate_group(job.pgid, job.proc_started_at, _marker(job), grace_s):
            log.warning(
                "killed the leftover processes of %s job %s (worker %s)",
                job.status,
                job.id,
                job.worker_id,
            )
        store.forget_process(job)
