"""The store's plumbing: transactions, and driver errors translated once, here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from orchestrator.errors import Conflict, StoreError
from orchestrator.settings import Settings
from orchestrator.store import tallies

# Workers LISTEN on this channel; every transaction that makes a job runnable (or frees a
# serial gate) NOTIFYs it, delivered at commit (PostgreSQL only; SQLite has one process).
JOBS_CHANNEL = "orch_jobs"


def announce(conn: Connection) -> None:
    """Wake the other workers when this transaction commits (once per transaction: a move
    that frees a gate and queues a job announces both with one NOTIFY)."""
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    if transaction is not None and conn.info.get(_ANNOUNCED) is transaction:
        return
    conn.execute(text(f"NOTIFY {JOBS_CHANNEL}"))
    conn.info[_ANNOUNCED] = transaction


def note_announced(conn: Connection) -> None:
    """This transaction announced itself by other means (a statement's `pg_notify`):
    `announce` need not send another NOTIFY."""
    conn.info[_ANNOUNCED] = conn.get_transaction()


_ANNOUNCED = "orch_announced_in"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC: the only kind of time the store accepts."""
    return datetime.now(UTC)


def db_now(conn: Connection) -> datetime:
    """The time by the database's clock on PostgreSQL (this machine's on SQLite).

    Leases and heartbeats are written by one machine and judged by another: measured with
    the one clock they share, a machine whose clock runs ahead can neither reclaim a live
    worker's jobs early nor keep a dead one's too long. SQLite has a single machine.
    """
    if conn.dialect.name != "postgresql":
        return utcnow()
    now: datetime = conn.execute(select(func.now())).scalar_one()
    return now.astimezone(UTC)


# A store opened without settings judges liveness by the default lease.
DEFAULT_LEASE_S = float(Settings.model_fields["lease_s"].default)


class StoreBase:
    """Holds the engine and opens the read and write transactions every query runs in."""

    def __init__(self, engine: Engine, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.engine = engine
        self._shared = threading.local()  # the connection of this thread's `reading()`
        # ORCH_LEASE_S: a worker whose heartbeat is older than this is lost.
        self.lease_s = lease_s

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Every read of this thread inside is one transaction on one connection: a document
        made of ten queries checks out one connection and begins one transaction, not ten,
        and on PostgreSQL sees one snapshot (repeatable read), so its figures agree."""
        if getattr(self._shared, "conn", None) is not None:
            yield  # already inside one
            return
        try:
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                self._shared.conn = conn
                try:
                    yield
                    _end_read(conn)
                finally:
                    self._shared.conn = None
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction (rolled back at the end), or the one of `reading()`."""
        shared: Connection | None = getattr(self._shared, "conn", None)
        try:
            if shared is not None:
                yield shared
                return
            with self.engine.connect() as conn:
                yield conn
                _end_read(conn)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction that commits every change in it, or none of them; the running
        totals it added to are its last statements (store/tallies.py)."""
        try:
            with self.engine.connect().execution_options(write=True) as conn:
                try:
                    with conn.begin():
                        yield conn
                        tallies.flush(conn)
                finally:
                    tallies.discard(conn)  # the counts of a rolled-back transaction
        except SQLAlchemyError as exc:
            raise translate(exc) from exc


def _end_read(conn: Connection) -> None:
    """End a read transaction with a commit, which on PostgreSQL costs what a rollback does
    (it wrote nothing), where a rollback would make psycopg forget the connection's prepared
    statements: every job's reads would then send its statements to be parsed anew."""
    if conn.in_transaction():
        conn.commit()


def translate(exc: SQLAlchemyError) -> StoreError | Conflict:
    """The orchestrator error for a driver error (the caller chains the original)."""
    if isinstance(exc, IntegrityError):
        # The driver's text names tables, constraints and values: for the log, not the user.
        return Conflict("the change conflicts with existing data (a name or id already taken)")
    if isinstance(exc, OperationalError):
        return StoreError(f"database unavailable: {_first_line(exc.orig)}")
    return StoreError(f"database error: {_first_line(exc)}")


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
