"""Schema migrations: Alembic scripts shipped in the package, applied on first use."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from orchestrator.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. Checking it against `alembic_version` keeps every command's start-up
# free of Alembic; a test keeps this constant equal to the scripts' head.
HEAD_REVISION = "0017"
# Any 64-bit number shared by all orchestrator processes: serialises concurrent upgrades.
_PG_MIGRATION_LOCK = 0x0A11CE_0001


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the code's schema; a no-op when it already is."""
    with engine.connect() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
    upgrade(engine)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration under a lock; returns the revisions before and after."""
    with engine.connect().execution_options(write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = current_revision(conn)
        if before == HEAD_REVISION:
            return before, before
        if before is not None and not (MIGRATIONS / "versions" / f"{before}.py").exists():
            raise StoreError(
                f"the database is at schema revision {before}, newer than this orchestrator "
                f"knows (head {HEAD_REVISION}); upgrade orchestrator"
            )
        from alembic import command  # imported here: only an actual upgrade needs Alembic
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return before, HEAD_REVISION
