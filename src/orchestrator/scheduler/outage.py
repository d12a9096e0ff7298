"""Riding out database faults: how long to wait before trying again, and what to say.

A killed connection, a failover, a SQLite lock held past its timeout: the database is gone
for a moment and comes back. The worker must neither die of it nor spam its log: it logs
once when an outage starts and once when it ends, waits longer after each failure (up to a
ceiling), and tells `/health` while it lasts. Pure bookkeeping, with the clock passed in, so
that it is tested with plain values.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_WAIT_S = 0.2
MAX_WAIT_S = 5.0


@dataclass
class Outage:
    """The database faults of one loop: since when it fails, and how many times in a row."""

    since: float | None = None
    failures: int = 0
    last_error: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def failed(self, error: object, now: float) -> float:
        """Note a fault; the seconds to wait before trying again."""
        with self._lock:
            if self.since is None:
                self.since = now
                log.warning("database unreachable, retrying until it answers: %s", error)
            self.failures += 1
            self.last_error = str(error)
            return min(MAX_WAIT_S, FIRST_WAIT_S * 2.0 ** min(self.failures - 1, 10))

    def answered(self, now: float) -> None:
        """The database answered: the outage, if any, is over."""
        with self._lock:
            if self.since is None:
                return
            log.warning(
                "database back after %.1fs (%d failed attempts)", now - self.since, self.failures
            )
            self.since, self.failures, self.last_error = None, 0, ""

    def problem(self, now: float) -> str | None:
        """What `/health` says while the outage lasts, or None."""
        with self._lock:
            if self.since is None:
                return None
            return (
                f"the worker cannot reach the database for {now - self.since:.1f}s: "
                f"{self.last_error}"
            )
