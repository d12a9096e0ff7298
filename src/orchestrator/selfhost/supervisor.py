"""`orch serve --supervise`: a small parent that restarts the service and rolls back.

A self deploy ends with the service exiting (status 75) to be restarted on the merged code.
The supervisor starts it again and checks it: it must answer /health within
ORCH_SELF_START_TIMEOUT_S, then stay healthy for ORCH_MONITOR_WINDOW_S. If it does not, the
supervisor reverts the merge with a revert commit (never a history rewrite), restarts the
service on the old code, and records the failure (monitor_status: UNHEALTHY, an alert).

Everything the rollback needs is imported here, at start, before any merge: a change that
breaks `import orchestrator` itself is still reverted by code loaded from before it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

import httpx

from orchestrator.errors import OrchError
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.proc import host_identity
from orchestrator.proc.service import ServiceProcess, start_service, stop_service
from orchestrator.selfhost.boot import RESTART_EXIT
from orchestrator.selfhost.rollback import revert_merge, roll_back
from orchestrator.settings import Settings
from orchestrator.store import SelfDeploy, SelfDeployState, Store

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.25
PROBE_TIMEOUT_S = 5.0
CRASH_BACKOFF_MAX_S = 30.0
ROLLBACK_ATTEMPTS = 3
ROLLBACK_RETRY_S = 2.0
# How long after its own watch the supervisor waits for the monitor's verdict on the task.
VERDICT_GRACE_S = 30.0


class Supervisor:
    """Runs the service as a child, restarts it, and rolls back a self deploy that fails."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        argv: Sequence[str],
        health_url: str,
        holder: str | None = None,
    ):
        self.store = store
        self.settings = settings
        self.argv = list(argv)
        self.health_url = health_url
        self.holder = holder  # its hold on the self repo (store/self_hold.py), renewed here
        self.stopping = False
        self.child: ServiceProcess | None = None
        self._done = threading.Event()

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM; the exit status."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.holder is not None:
            threading.Thread(target=self._keep_hold, name="self-hold", daemon=True).start()
        try:
            return self._supervise()
        finally:
            self._done.set()
            if self.holder is not None:
                with contextlib.suppress(OrchError):
                    self.store.release_self_hold(self.holder)

    def _keep_hold(self) -> None:
        """Renew the hold on the self repo every third of a lease, as job leases are."""
        assert self.holder is not None
        lost = False
        while not self._done.wait(self.settings.lease_s / 3):
            try:
                held = self.store.take_self_hold(
                    self.holder, host_identity(), os.getpid(), self.settings.lease_s
                )
            except OrchError:
                continue  # a database fault: the lease outlives a short one
            if held.holder != self.holder and not lost:
                log.error(
                    "supervisor: the hold on the self repo went to pid %s on %s (ours lapsed)",
                    held.pid,
                    held.host,
                )
            lost = held.holder != self.holder

    def _supervise(self) -> int:
        crashes = 0
        pending = self._pending()  # a restart we did not see (we crashed)
        self._after_restart(pending[-1] if pending else None)
        while not self.stopping:
            assert self.child is not None
            code = self.child.wait()
            if self.stopping:
                break
            pending = self._pending()
            if code == RESTART_EXIT or pending:
                crashes = 0
                log.info("supervisor: the service restarts on new code")
                self._after_restart(pending[-1] if pending else None)
                continue
            crashes += 1
            wait = min(CRASH_BACKOFF_MAX_S, 2.0**crashes)
            log.warning("supervisor: the service exited %s; starting it again in %.0fs", code, wait)
            time.sleep(wait)
            self.child = start_service(self.argv)
        if self.child is not None:
            stop_service(self.child, self.settings.kill_grace_s + 10)
        return 0

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def _after_restart(self, deploy: SelfDeploy | None) -> None:
        self.child = start_service(self.argv)
        if deploy is None:
            return
        problem = self._await_health() or self._watch()
        if problem is None:
            try:
                self.store.mark_self_deploy_healthy(deploy.id)
                log.info("supervisor: the self deploy of task %s is healthy", deploy.task_id)
                self._revert_if_the_monitor_failed_it(deploy)
            except OrchError:
                log.exception("supervisor: could not follow self deploy %s", deploy.id)
            return
        if self.stopping:
            return
        log.error("supervisor: the new code %s; rolling back", problem)
        # Stopped first: once it is gone, no in-service monitor can judge the task while the
        # rollback checks and records its own verdict (the two are exclusive).
        stop_service(self.child, self.settings.kill_grace_s)
        try:
            self._roll_back(deploy, problem)
        finally:
            # Whatever happened to the rollback, the service must not stay down.
            self.child = start_service(self.argv)

    def _roll_back(self, deploy: SelfDeploy, problem: str) -> None:
        """The rollback, tried again through a passing database fault (a locked SQLite file,
        a PostgreSQL failover); if it still fails, an operator must revert by hand, and the
        log says which commit."""
        for attempt in range(1, ROLLBACK_ATTEMPTS + 1):
            try:
                if not roll_back(self.store, self.settings, deploy, problem, self.health_url):
                    # Judged first by the in-service monitor: revert still, if it failed it.
                    self._revert_judged(deploy)
                return
            except Exception:
                log.exception(
                    "supervisor: rolling back self deploy %s failed (attempt %d of %d)",
                    deploy.id,
                    attempt,
                    ROLLBACK_ATTEMPTS,
                )
                time.sleep(ROLLBACK_RETRY_S)
        log.error(
            "supervisor: self deploy %s was NOT rolled back: revert %s by hand",
            deploy.id,
            deploy.merged_commit,
        )

    def _revert_if_the_monitor_failed_it(self, deploy: SelfDeploy) -> None:
        """The in-service post-deploy-monitor has the last word on the task; when it fails
        the task (a /health that turned bad after this watch, or could not be watched), the
        merge must not stay: revert it and restart the service on the old code."""
        deadline = time.monotonic() + self.settings.monitor_window_s + VERDICT_GRACE_S
        task = self.store.get_task(deploy.task_id)
        while task.state is TaskState.ACTIVE and not self.stopping:
            if time.monotonic() > deadline:
                log.warning("supervisor: task %s has no post-deploy verdict yet", task.id)
                return
            time.sleep(HEALTH_POLL_S)
            task = self.store.get_task(deploy.task_id)
        if self._revert_judged(deploy):
            assert self.child is not None
            stop_service(self.child, self.settings.kill_grace_s)
            self.child = start_service(self.argv)

    def _revert_judged(self, deploy: SelfDeploy) -> bool:
        """Revert the merge of a deploy whose task already failed at post-deploy (the
        monitor's verdict, not the supervisor's); True when it did. The caller restarts."""
        task = self.store.get_task(deploy.task_id)
        if task.state is not TaskState.FAILED or task.stage is not Stage.POST_DEPLOY:
            return False
        current = self.store.get_self_deploy(deploy.id)
        if current is None or current.state not in (
            SelfDeployState.COMPLETED,
            SelfDeployState.HEALTHY,
        ):
            return False  # rolled back already (or never completed: boot's business)
        revert, how = revert_merge(self.store, current)
        reason = f"the post-deploy-monitor failed the self deploy of {current.merged_commit[:12]}"
        if not self.store.record_late_revert(current, revert, f"{reason}; {how}"):
            return False
        log.error("supervisor: %s; %s; restarting on the old code", reason, how)
        return True

    def _pending(self) -> list[SelfDeploy]:
        """The pending self deploys; none when the database cannot say (the service settles
        them itself at boot, so a supervisor never stops on a database fault)."""
        try:
            return self.store.self_deploys(SelfDeployState.PENDING)
        except OrchError:
            log.exception("supervisor: could not read the pending self deploys")
            return []

    def _await_health(self) -> str | None:
        """None once the service answers /health; otherwise what went wrong."""
        deadline = time.monotonic() + self.settings.self_start_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline and not self.stopping:
                assert self.child is not None
                if self.child.poll() is not None:
                    return f"exited with status {self.child.returncode} before answering /health"
                try:
                    if client.get(self.health_url).is_success:
                        return None
                except httpx.HTTPError:
                    pass
                time.sleep(HEALTH_POLL_S)
        return f"did not answer /health within {self.settings.self_start_timeout_s:g}s"

    def _watch(self) -> str | None:
        """None if the service stays healthy for the monitor window."""
        deadline = time.monotonic() + self.settings.monitor_window_s
        # A slow answer is not a failure: only an error status, a refusal or a process gone.
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
            while time.monotonic() < deadline and not self.stopping:
                assert self.child is not None
                if self.child.poll() is not None:
                    return f"exited with status {self.child.returncode} during the health watch"
                try:
                    response = client.get(self.health_url)
                    if not response.is_success:
                        return f"answered /health with {response.status_code}"
                except httpx.HTTPError as exc:
                    return f"stopped answering /health ({type(exc).__name__})"
                time.sleep(self.settings.monitor_interval_s)
        return None
