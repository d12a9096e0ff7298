"""Database engines: SQLite in WAL mode by default, PostgreSQL (psycopg 3) to scale out."""

from __future__ import annotations

import contextlib
import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from orchestrator.errors import StoreError

# Writers wait this long for SQLite's lock before giving up (ORCH_SQLITE_BUSY_TIMEOUT_S);
# jobs commit in milliseconds.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Besides one connection per running job, a worker's own threads each use one: the loop,
# the heartbeat, the alert sender, and one spare (docs/scale-out.md, "Sizing").
OWN_CONNECTIONS = 4
# Connections opened beyond the pool in a burst (the HTTP API of `orch serve`), then closed.
BURST_CONNECTIONS = 5


def make_engine(
    url: str, *, parallel_jobs: int = 4, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> Engine:
    """Create the engine for `url`, with SQLite tuned for several processes writing at once.

    On PostgreSQL the pool holds `parallel_jobs` (ORCH_MAX_PARALLEL_JOBS) connections plus
    the worker's own, so a busy worker never waits for a connection and a server's
    `max_connections` can be sized from the settings.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(
            url, pool_size=parallel_jobs + OWN_CONNECTIONS, max_overflow=BURST_CONNECTIONS
        )
        event.listen(engine.pool, "checkout", _replace_if_closed)
        event.listen(engine, "connect", _postgres_on_connect)
        return engine
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {folder} for the database: {exc.strerror}") from exc
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_on_connect(dbapi_connection, busy_timeout_s)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _postgres_on_connect(dbapi_connection: Any, record: Any) -> None:
    # Sessions in UTC, so the timestamps psycopg reads are UTC already, and the store's
    # UTCDateTime passes them through as they are (/queue reads a thousand of them).
    dbapi_connection.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.commit()


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Replace a pooled PostgreSQL connection the server has closed (its backend killed, the
    server restarted) before it is used. The server's goodbye makes the idle connection's
    socket readable, which a poll that does not wait sees with no round trip; a ping on
    every check-out (`pool_pre_ping`) would cost one on each transaction. A connection that
    dies after the check is a fault like any other: the transaction fails with StoreError."""
    if dbapi_connection.closed or _readable(dbapi_connection.fileno()):
        raise DisconnectionError("the server closed the pooled connection")


def _readable(fd: int) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return bool(select.select([fd], [], [], 0)[0])
    return True  # a socket that cannot be polled is not one to use


def _sqlite_on_connect(dbapi_connection: Any, busy_timeout_s: float) -> None:
    # Take transaction control from the sqlite3 module so that `_sqlite_on_begin` decides how
    # each transaction begins (the recipe in SQLAlchemy's SQLite dialect documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # A transaction that will write takes the write lock up front (BEGIN IMMEDIATE): a
    # deferred one that reads first and writes later fails at once with "database is locked"
    # when another process committed in between, and no busy timeout can save it.
    if connection.get_execution_options().get("write"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
