"""`orch db`: the database schema."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import console
from orchestrator.store import open_store


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """Apply pending migrations (every command also does this on first use)."""
    store = open_store(app.settings, migrate=False)
    try:
        before, after = store.upgrade_schema()
    finally:
        store.close()
    if before == after:
        console.print(f"database already at revision {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to revision {after}")
