"""Pooled PostgreSQL connections whose backends the server killed are replaced before use,
with no round trip spent on a ping at each check-out, and sessions that read UTC whatever
the server's zone (store/engine.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.engine import make_url

from orchestrator.settings import load_settings
from orchestrator.store import open_store
from orchestrator.store.schema import alerts


def test_a_pooled_connection_whose_backend_was_killed_is_replaced_before_use(
    pg_url: str,
) -> None:
    store = open_store(load_settings(db_url=pg_url))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        store.list_repos()  # a connection goes back to the pool, idle
        with store.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            # The backend ends after the call returns: wait until it has said goodbye.
            gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
            deadline = time.monotonic() + 10
            while conn.execute(gone, {"p": pid}).scalar() and time.monotonic() < deadline:
                time.sleep(0.01)
        admin.dispose()
        statements.clear()

        assert store.list_repos() == []  # no error: the dead connection was not used
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        # No ping was sent on the way: each statement is one of ours.
        assert all("pg_backend_pid" in s or "repos" in s for s in statements), statements
    finally:
        store.close()


def test_timestamps_read_back_are_utc_whatever_zone_the_server_gives_a_session(
    pg_url: str,
) -> None:
    # The server's default zone for these sessions is Tokyo; the store's sessions run in UTC,
    # and a session some code moved to another zone still reads UTC.
    tokyo = make_url(pg_url)
    tokyo = tokyo.update_query_dict({"options": f"{tokyo.query['options']} -cTimeZone=Asia/Tokyo"})
    store = open_store(load_settings(db_url=tokyo.render_as_string(hide_password=False)))
    try:
        written = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
        with store.engine.begin() as conn:
            assert conn.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
            conn.execute(insert(alerts).values(kind="k", message="m", created_at=written))
        with store.engine.begin() as conn:
            conn.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
            read = conn.execute(select(alerts.c.created_at)).scalar_one()
        assert read == written and read.tzinfo is UTC
        (alert,) = store.list_alerts()
        assert alert.created_at == written and alert.created_at.tzinfo is UTC
    finally:
        store.close()


def test_a_connection_keeps_its_prepared_statements_across_reads(pg_url: str) -> None:
    # psycopg prepares a statement on its fifth run on a connection, and forgets every one it
    # prepared at a rollback: reads end with a commit, or no statement would ever be prepared
    # and the server would parse each of a job's statements anew.
    store = open_store(load_settings(db_url=pg_url))
    try:
        for _ in range(8):
            assert store.list_repos() == []
        with store.reading():
            store.list_repos()
        with store.engine.connect() as conn:  # the one pooled connection: nothing ran at once
            prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements"))
            assert prepared.scalar_one() >= 1
    finally:
        store.close()
