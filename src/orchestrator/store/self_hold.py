"""The hold on the self repo: which `orch serve` settles and runs self deploys.

A self deploy is merged by one service, which exits and is restarted on the merged code by
its supervisor; the restarted process settles it at boot. A second service on the same
database must take no part: its boot would find the deploy pending, running on code other
than the merged commit, and roll it back. So the supervisor of one service holds the self
repo under a lease it renews (by the database's clock, as job leases are); a service whose
supervisor does not hold it serves and runs ordinary jobs only. A holder that dies frees it
when its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.store.base import StoreBase, db_now
from orchestrator.store.schema import self_hold

_NAME = "self"


@dataclass(frozen=True)
class SelfHold:
    """Who holds the self repo."""

    holder: str
    host: str
    pid: int


class SelfHoldQueries(StoreBase):
    """Take, renew and give up the hold on the self repo."""

    def take_self_hold(
        self, holder: str, host: str, pid: int, lease_s: float, *, replacing: str = ""
    ) -> SelfHold:
        """Take the hold (or renew it, when `holder` has it) unless another holder's lease
        is still good, or that holder is `replacing` (known dead); who holds it afterwards."""
        with self._write() as conn:
            now = db_now(conn)
            until = now + timedelta(seconds=lease_s)
            ours = {"holder": holder, "host": host, "pid": pid, "lease_expires_at": until}
            taken = conn.execute(
                update(self_hold)
                .where(
                    self_hold.c.name == _NAME,
                    self_hold.c.holder.in_([holder, replacing])
                    | (self_hold.c.lease_expires_at < now),
                )
                .values(**ours)
            )
            if taken.rowcount == 0:
                try:
                    with conn.begin_nested():  # a concurrent taker may insert first
                        conn.execute(insert(self_hold).values(name=_NAME, **ours))
                except IntegrityError:
                    pass
            row = conn.execute(select(self_hold).where(self_hold.c.name == _NAME)).one()
        return SelfHold(row.holder, row.host, row.pid)

    def holds_self(self, holder: str) -> bool:
        """True while `holder` holds the self repo under a lease that has not run out."""
        with self._read() as conn:
            now = db_now(conn)
            row = conn.execute(
                select(self_hold.c.name).where(
                    self_hold.c.name == _NAME,
                    self_hold.c.holder == holder,
                    self_hold.c.lease_expires_at >= now,
                )
            ).first()
        return row is not None

    def release_self_hold(self, holder: str) -> None:
        """Give the hold up (a clean stop): the next service takes it at once."""
        with self._write() as conn:
            conn.execute(
                delete(self_hold).where(self_hold.c.name == _NAME, self_hold.c.holder == holder)
            )
