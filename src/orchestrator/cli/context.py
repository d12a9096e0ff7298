"""What every command shares: settings and store, built on first use, closed at exit."""

from __future__ import annotations

import click

from orchestrator.settings import Settings, ensure_home, load_settings
from orchestrator.store import Store, open_store


class AppContext:
    """Lazily built settings and store, so that `--help` works even with a broken config."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        """The settings, loaded (and validated) on first use, with ORCH_HOME made."""
        if self._settings is None:
            settings = load_settings()
            ensure_home(settings)  # every command keeps something there; say so if it cannot
            self._settings = settings
        return self._settings

    @property
    def store(self) -> Store:
        """The store, opened and migrated on first use."""
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def close(self) -> None:
        """Release the database connections."""
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext, ensure=True)
