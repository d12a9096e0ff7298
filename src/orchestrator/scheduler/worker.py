"""The worker: one event-driven scheduler loop.

When a job ends, its thread wakes the loop, which claims the next runnable jobs at once: the
next stage never waits for a poll. A slow fallback poll picks up work other processes added
(a task submitted from the CLI, a deferred job coming due). The wake-up flag is cleared
BEFORE each claim, never after: a wake-up that arrives while a claim runs is kept, so the
work it announces is never left to the fallback poll.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil

from orchestrator.alerting import AlertNotifier
from orchestrator.errors import StaleState, StoreError
from orchestrator.jobs.context import HandOff, JobContext, JobEnd
from orchestrator.jobs.launcher import internal_error, launch_job
from orchestrator.proc import CancelToken, host_identity
from orchestrator.redact import secret_values
from orchestrator.scheduler import leases
from orchestrator.scheduler.drain import drain_end
from orchestrator.scheduler.leases import Running
from orchestrator.scheduler.outage import Outage
from orchestrator.scheduler.recovery import Identity, take_over
from orchestrator.scheduler.slots import HANDS_OFF, Slots, run_in_slot
from orchestrator.selfhost.hosting import SelfHosting
from orchestrator.settings import Settings
from orchestrator.store import Claimant, Job, Store
from orchestrator.workspace import checkout

log = logging.getLogger(__name__)

# The loop looks for work added by other processes at least this often. On PostgreSQL the
# workers wake each other with LISTEN/NOTIFY, and the poll is only a safety net.
FALLBACK_POLL_S = 0.5
LISTENING_POLL_S = 5.0


class Worker:
    """Claims runnable jobs and runs up to `ORCH_MAX_PARALLEL_JOBS` of them at once."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        drain: bool = False,
        on_change: Callable[[], None] | None = None,
        hosting: SelfHosting | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.drain = drain
        self.on_change = on_change
        # Set by `orch serve` holding the self repo: it runs self deploys and restarts.
        self.hosting = hosting or SelfHosting()
        self.identity = Identity(
            worker_id=f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}",
            host=host_identity(),  # not the hostname alone: proc/host.py says why
        )
        self._secrets = secret_values(settings)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._hang_up = f"orch_stop_{secrets.token_hex(6)}"  # this worker's listener alone
        self._slots = Slots(settings.max_parallel_jobs)
        self._chores = ThreadPoolExecutor(1, thread_name_prefix="chores")  # JobContext.later
        self._thread = threading.local()  # a job thread's HandOff, from its run to its hand-off
        self.outage = Outage()  # database faults, ridden out (scheduler/outage.py)
        self._ended = False
        self.stranded: tuple[str, ...] = ()  # see scheduler/drain.py
        url = settings.alert_webhook_url
        self._notifier = AlertNotifier(store, url) if url else None

    # --- control ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop: running jobs are killed and their stages re-queued."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Something changed: look for work now."""
        self._wake.set()

    def problem(self) -> str | None:
        """Why this worker cannot run jobs now (for `/health`), or None."""
        if self._ended and not self._stopping.is_set():
            return "the worker is not running (see its log)"
        return self.outage.problem(time.monotonic())

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, with drain, until no task can make progress); exit status:
        1 when the drain ended with self deploys only `orch serve` can run (`stranded`).
        A database fault never ends it: the loop waits and tries again (`Outage`)."""
        try:
            if self._register():
                self._loop()
        finally:
            self._ended = True
        return 1 if self.stranded else 0

    def _register(self) -> bool:
        """Register this worker and take over what dead ones left; False if stopped first."""
        me = self.identity
        while not self._stopping.is_set():
            try:
                self.store.register_worker(
                    me.worker_id, me.host, os.getpid(), psutil.Process().create_time()
                )
                take_over(self.store, me, self.settings.kill_grace_s)
            except StoreError as exc:
                self._stopping.wait(self.outage.failed(exc, time.monotonic()))
                continue
            self.outage.answered(time.monotonic())
            return True
        return False

    def _loop(self) -> None:
        background = [
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
            threading.Thread(target=self._renewals, name="renewals", daemon=True),
            threading.Thread(target=self._watch_leases, name="lease-watch", daemon=True),
        ]
        if self.store.dialect == "postgresql":
            background.append(threading.Thread(target=self._listen, name="listen", daemon=True))
        for thread in background:
            thread.start()
        notifier = None
        if self._notifier is not None:
            notifier = threading.Thread(
                target=self._notifier.run, args=(self._stopping,), name="alerts", daemon=True
            )
            notifier.start()
        pool = ThreadPoolExecutor(self.settings.max_parallel_jobs, thread_name_prefix="job")
        try:
            while not self._stopping.is_set():
                self._wake.clear()  # before the claim: see the module docstring
                try:
                    self._reap()
                    self._claim(pool)
                    if self.drain and self._drained():
                        break
                    wait = self._next_wait()
                    self.outage.answered(time.monotonic())
                except StoreError as exc:
                    wait = self.outage.failed(exc, time.monotonic())
                self._wake.wait(wait)
        finally:
            self._shutdown(pool)
            if notifier is not None and self._notifier is not None:
                self._notifier.wake.set()
                notifier.join(timeout=15)
            # Waited for, so that none of them uses the store after its owner closes it (a
            # take-over may be waiting out a kill grace).
            for thread in background:
                thread.join(timeout=self.settings.lease_s + self.settings.kill_grace_s + 10)

    def _claim(self, pool: ThreadPoolExecutor) -> None:
        free = self._slots.free()
        if free <= 0:
            return
        asked = time.monotonic()
        for job in self._claim_jobs(free):
            running = self._slots.add(job, asked)
            pool.submit(run_in_slot, running, self._run_job, self._hand_off, self._wake.set)

    @property
    def _claimant(self) -> Claimant:
        me = self.identity
        return Claimant(
            me.worker_id, me.host, self.settings.lease_s, self.hosting.runs_self_deploys
        )

    def _claim_jobs(self, limit: int) -> list[Job]:
        me = self._claimant
        return self.store.claim_jobs(
            me.worker_id, me.host, limit, me.lease_s, self_deploy=me.self_deploy
        )

    def _hand_off(self, end: JobEnd | None) -> Running | None:
        """In the thread of a job that just ended (`scheduler/slots.py`): the next job for
        its slot, or None. A verdict claimed it already, in its own transaction; after any
        other end that hands off, it is claimed now."""
        verdict_claim: HandOff | None = getattr(self._thread, "hand_off", None)
        self._thread.hand_off = None
        if verdict_claim is not None and verdict_claim.job is not None:
            return self._take(verdict_claim.job, verdict_claim.asked)
        if end not in HANDS_OFF or self._stopping.is_set():
            return None
        if verdict_claim is not None and verdict_claim.made:
            return None  # the verdict's claim found nothing runnable
        asked = time.monotonic()
        try:
            claimed = self._claim_jobs(1)
        except StoreError:
            return None  # the loop rides the outage out
        return self._take(claimed[0], asked) if claimed else None

    def _take(self, job: Job, asked: float) -> Running | None:
        """Run a job claimed by a hand-off in the slot that claimed it."""
        running = self._slots.add(job, asked)
        if self._stopping.is_set():  # stopped while it claimed: give the job back at once
            with contextlib.suppress(StoreError):
                self.store.abandon_job(running.job, "the worker stopped; re-queued")
            running.future.set_result(JobEnd.CANCELLED)
            return None
        return running

    def _reap(self) -> None:
        finished = self._slots.reap()
        for running in finished:
            end = running.future.result()
            job = running.job
            self.hosting.after_job(end)
            if end is JobEnd.BLOCKED:  # a person must act: say so where they look
                task = self.store.get_task(job.task_id)
                log.warning("task %s blocked in %s: %s", task.id, task.stage, task.reason)
            elif end is JobEnd.CANCELLED and not self._stopping.is_set():
                # Cancelled under us (task cancelled, or the job was taken over): nothing to do.
                task = self.store.get_task(job.task_id)
                why = "the task was cancelled" if task.state == "cancelled" else "taken over"
                log.info("job %s (%s of task %s) stopped: %s", job.id, job.stage, task.id, why)
        if finished and self._notifier is not None:
            self._notifier.wake.set()
        if finished and self.on_change is not None:
            self.on_change()

    def _drained(self) -> bool:
        if self._slots:
            return False
        active, live = self.store.pending_work()
        # Only self deploys can be left when every active task has one live job: ask then.
        ask = active == live > 0
        end = drain_end(active, live, self.hosting.left_for_the_service(self.store) if ask else [])
        if end is not None:
            self.stranded = end.stranded
        return end is not None

    def _next_wait(self) -> float:
        poll = LISTENING_POLL_S if self._listening.is_set() else FALLBACK_POLL_S
        if self._slots.free() <= 0:
            return poll  # nothing could be claimed before a job ends, and that wakes the loop
        due_in = self.store.next_due_in()
        return poll if due_in is None else max(0.0, min(poll, due_in))

    def _listen(self) -> None:
        # A notification only sets the wake-up flag; the loop clears the flag before it
        # claims, so one that arrives during a claim is never lost. The slow poll is used
        # only while the LISTEN is in place; otherwise the loop polls fast, and says so.
        warned = False
        while not self._stopping.is_set():
            try:
                self.store.listen_for_jobs(
                    self._wake.set, self._stopping, self._listening.set, hang_up=self._hang_up
                )
            except Exception as exc:
                if not warned:
                    log.warning(
                        "listening for jobs failed (%s); polling every %.1fs until it works",
                        exc,
                        FALLBACK_POLL_S,
                    )
                warned = True
            else:
                warned = False
            finally:
                self._listening.clear()
            self._stopping.wait(1.0)

    # --- one job ------------------------------------------------------------------------------

    def _run_job(self, job: Job, cancel: CancelToken) -> JobEnd | None:
        # The claim its verdict may make, kept for `_hand_off` in this thread (it runs next,
        # scheduler/slots.py) whatever happens after the verdict commits.
        hand_off = None if self._stopping.is_set() else HandOff(self._claimant)
        self._thread.hand_off = hand_off
        context = JobContext(
            self.store,
            self.settings,
            cancel,
            self.identity.worker_id,
            self._secrets,
            take_over=self.hosting.take_over,
            hand_off=hand_off,
            chores=self._chores,
        )
        try:
            # Every git push of this job first checks that its attempt still holds its lease.
            with checkout.fenced(lambda: self.store.hold(job, self.settings.lease_s), cancel):
                return launch_job(context, job)
        except StaleState as exc:
            log.info("job %s: result not committed: %s", job.id, exc)
            return None
        except StoreError as exc:
            # The database, not the job, failed: no budget is charged; the job is queued
            # afresh, now or (when the database still does not answer) at its lease's end.
            log.warning("job %s: not recorded (%s); it runs again", job.id, exc)
            self.outage.failed(exc, time.monotonic())
            with contextlib.suppress(StoreError):
                self.store.abandon_job(job, f"database fault: {exc}; re-queued")
            return None
        except Exception:
            log.exception(
                "job %s (%s of task %s) failed inside orchestrator", job.id, job.stage, job.task_id
            )
            internal_error(self.store, self.settings, job)
            return None
        finally:
            cancel.close()

    # --- leases and shutdown --------------------------------------------------------------------

    def _renewals(self) -> None:
        # Its own thread: the heartbeat's take-overs may wait out a kill grace, and a renewal
        # held up behind them would lose this worker's healthy jobs (see _watch_leases).
        interval = self.settings.lease_s / 3
        while not self._stopping.wait(interval):
            try:
                self._renew()
            except StoreError as exc:
                self.outage.failed(exc, time.monotonic())  # logged once per outage
            except Exception:
                log.exception("renewing the leases failed; retrying")

    def _heartbeat(self) -> None:
        interval = self.settings.lease_s / 3
        while not self._stopping.wait(interval):
            try:
                self.store.worker_heartbeat(self.identity.worker_id)
                self.store.fold_totals()  # so that /status sums a few rows of them
                mine = self._slots.ids()
                if take_over(self.store, self.identity, self.settings.kill_grace_s, mine):
                    self._wake.set()
                self.hosting.tell_waiting(self.store)
            except StoreError as exc:
                self.outage.failed(exc, time.monotonic())  # logged once per outage
            except Exception:
                log.exception("heartbeat failed; retrying")

    def _renew(self) -> None:
        """Renew the leases of the running jobs; stop those that are not ours any more."""
        running = self._slots.snapshot()
        asked = time.monotonic()
        for r in leases.renew(
            self.store, self.identity.worker_id, running, self.settings.lease_s, asked
        ):
            log.warning("job %s is no longer ours (cancelled or taken over): stopping it", r.job.id)
            r.cancel.cancel()

    def _watch_leases(self) -> None:
        """Stop the agents of jobs whose lease ran out without a renewal.

        A worker cut off from the database cannot renew; once a lease is over, another
        worker may take the job, and this attempt's result could never be committed. Its own
        thread, with no database call, so a connection that hangs cannot hold it up.
        """
        lease_s = self.settings.lease_s
        while not self._stopping.wait(lease_s / 10):
            running = list(self._slots.snapshot().values())
            for r in leases.lapsed(running, time.monotonic(), lease_s):
                log.warning(
                    "job %s: its lease ran out without a renewal (database unreachable?); "
                    "stopping it, as its result could not be committed",
                    r.job.id,
                )
                r.cancel.cancel()

    def _shutdown(self, pool: ThreadPoolExecutor) -> None:
        self._stopping.set()
        running = list(self._slots.snapshot().values())
        for r in running:
            r.cancel.cancel()
        pool.shutdown(wait=True)
        # Without a database, the leases run out and the next worker re-queues the jobs.
        with contextlib.suppress(StoreError):
            for r in running:
                if r.future.result() is JobEnd.CANCELLED:
                    self.store.abandon_job(r.job, "the worker stopped; re-queued")
            self.store.stop_worker(self.identity.worker_id)
            self.store.hang_up(self._hang_up)  # the listener is joined next: now, not in a second
            self.store.fold_totals()  # what this worker added since its last heartbeat
        self._chores.shutdown(wait=True)  # after the jobs are given back: chores can wait
