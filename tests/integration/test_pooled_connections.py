"""Pooled PostgreSQL connections whose backends the server killed are replaced before use,
with no round trip spent on a ping at each check-out (store/engine.py)."""

from __future__ import annotations

from sqlalchemy import create_engine, event, text

from orchestrator.settings import load_settings
from orchestrator.store import open_store


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
        admin.dispose()
        statements.clear()

        assert store.list_repos() == []  # no error: the dead connection was not used
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        # No ping was sent on the way: each statement is one of ours.
        assert all("pg_backend_pid" in s or "repos" in s for s in statements), statements
    finally:
        store.close()
