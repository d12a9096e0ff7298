"""Queries on workers: who runs, where, and whether they are still alive."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import insert, select, update

from orchestrator.errors import StoreError
from orchestrator.store.base import JOBS_CHANNEL, StoreBase, utcnow
from orchestrator.store.records import Worker
from orchestrator.store.schema import workers


class WorkerQueries(StoreBase):
    """Register workers and their heartbeats."""

    def register_worker(self, worker_id: str, host: str, pid: int, proc_started_at: float) -> None:
        """Record a starting worker."""
        now = utcnow()
        with self._write() as conn:
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    host=host,
                    pid=pid,
                    proc_started_at=proc_started_at,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def worker_heartbeat(self, worker_id: str) -> None:
        """The worker is alive."""
        with self._write() as conn:
            conn.execute(
                update(workers).where(workers.c.id == worker_id).values(heartbeat_at=utcnow())
            )

    def stop_worker(self, worker_id: str) -> None:
        """The worker stopped cleanly."""
        with self._write() as conn:
            conn.execute(
                update(workers).where(workers.c.id == worker_id).values(stopped_at=utcnow())
            )

    def list_workers(self, *, running_only: bool = False) -> list[Worker]:
        """Workers, newest first."""
        query = select(workers).order_by(workers.c.started_at.desc())
        if running_only:
            query = query.where(workers.c.stopped_at.is_(None))
        with self._read() as conn:
            return [Worker.from_row(row) for row in conn.execute(query)]

    def get_worker(self, worker_id: str) -> Worker | None:
        """One worker, if it ever registered."""
        with self._read() as conn:
            row = conn.execute(select(workers).where(workers.c.id == worker_id)).first()
        return Worker.from_row(row) if row else None

    def listen_for_jobs(self, on_notify: Callable[[], None], stop: threading.Event) -> None:
        """Call `on_notify` whenever another process makes a job runnable, until `stop`.

        PostgreSQL only (LISTEN/NOTIFY on a connection of its own); returns at once on SQLite,
        where the one worker process learns of its own jobs directly. Raises StoreError when
        the connection fails, for the caller to retry.
        """
        if self.dialect != "postgresql":
            return
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {JOBS_CHANNEL}")
                on_notify()  # whatever was announced before we listened
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0):
                        on_notify()
        except psycopg.Error as exc:
            raise StoreError(f"listening for jobs failed: {exc}") from exc
