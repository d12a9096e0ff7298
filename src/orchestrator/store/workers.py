"""Queries on workers: who runs, where, and whether they are still alive."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy import func, insert, select, update

from orchestrator.errors import StoreError
from orchestrator.store import tallies
from orchestrator.store.base import JOBS_CHANNEL, StoreBase, db_now
from orchestrator.store.records import Worker
from orchestrator.store.schema import workers


class WorkerQueries(StoreBase):
    """Register workers and their heartbeats."""

    def register_worker(self, worker_id: str, host: str, pid: int, proc_started_at: float) -> None:
        """Record a starting worker."""
        with self._write() as conn:
            now = db_now(conn)
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
                update(workers).where(workers.c.id == worker_id).values(heartbeat_at=db_now(conn))
            )

    def fold_totals(self) -> int:
        """Sum the running totals' rows of additions into one per key (store/tallies.py);
        how many rows went. Each worker does, on its heartbeat."""
        with self._write() as conn:
            return tallies.fold(conn)

    def stop_worker(self, worker_id: str) -> None:
        """The worker stopped cleanly."""
        with self._write() as conn:
            conn.execute(
                update(workers).where(workers.c.id == worker_id).values(stopped_at=db_now(conn))
            )

    def list_workers(self, *, running_only: bool = False) -> list[Worker]:
        """Workers, newest first; `running_only` leaves out those that stopped cleanly.

        A worker that was killed never records that it stopped: one whose heartbeat is
        older than the lease is listed as lost, not running.
        """
        query = select(workers).order_by(workers.c.started_at.desc())
        if running_only:
            query = query.where(workers.c.stopped_at.is_(None))
        with self._read() as conn:
            rows = conn.execute(query).all()
            if not rows:  # no worker to judge by the clock: a query saved on /status
                return []
            now = db_now(conn)
        return [Worker.from_row(row, now, self.lease_s) for row in rows]

    def get_worker(self, worker_id: str) -> Worker | None:
        """One worker, if it ever registered."""
        with self._read() as conn:
            now = db_now(conn)
            row = conn.execute(select(workers).where(workers.c.id == worker_id)).first()
        return Worker.from_row(row, now, self.lease_s) if row else None

    def listen_for_jobs(
        self,
        on_notify: Callable[[], None],
        stop: threading.Event,
        on_listening: Callable[[], None] | None = None,
        *,
        hang_up: str | None = None,
    ) -> None:
        """Call `on_notify` whenever another process makes a job runnable, until `stop`.

        PostgreSQL only (LISTEN/NOTIFY on a connection of its own); returns at once on SQLite,
        where the one worker process learns of its own jobs directly. `on_listening` is
        called once the LISTEN is in place. A notification on the channel `hang_up` (sent
        by `hang_up`) makes it look at `stop` at once. Raises StoreError when the connection
        fails, for the caller to retry.
        """
        if self.dialect != "postgresql":
            return
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {JOBS_CHANNEL}")
                if hang_up is not None:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(hang_up)))
                if on_listening is not None:
                    on_listening()
                on_notify()  # whatever was announced before we listened
                while not stop.is_set():
                    # The timeout (psycopg >= 3.2) lets the loop see `stop` at least once a
                    # second, should the hang-up not come (the database went away).
                    for note in conn.notifies(timeout=1.0):
                        if note.channel == JOBS_CHANNEL:
                            on_notify()
                        elif stop.is_set():
                            break
        except psycopg.Error as exc:
            raise StoreError(f"listening for jobs failed: {exc}") from exc

    def hang_up(self, channel: str) -> None:
        """Make the listener on `channel` (`listen_for_jobs`) look at its stop now: a
        worker's shutdown, and a drain's end, then wait for no poll's timeout."""
        if self.dialect != "postgresql":
            return
        with self._write() as conn:
            conn.execute(select(func.pg_notify(channel, "")))
