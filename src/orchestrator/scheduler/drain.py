"""When `orch worker --drain` is done, as a pure decision on plain counts.

It ends once no task can make progress here: every task is done, failed, cancelled or
blocked and no job is live. A self deploy (the orchestrator's own repo) is the one job a
plain worker never runs (only `orch serve` can restart on the merged code): when such jobs
are all that is left, waiting would be forever, so the drain ends, naming them, and the
command exits non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DrainEnd:
    """The drain is over; `stranded` are the tasks whose self deploy waits for `orch serve`."""

    stranded: tuple[str, ...] = ()


def drain_end(active: int, live: int, waiting_self_deploys: Sequence[str]) -> DrainEnd | None:
    """With nothing running here, `active` tasks and `live` jobs left, of which the runnable
    self deploys are `waiting_self_deploys`: the end of the drain, or None to go on."""
    if active == live == 0:
        return DrainEnd()
    waiting = len(waiting_self_deploys)
    if waiting and active == live == waiting:
        return DrainEnd(tuple(sorted(waiting_self_deploys)))
    return None
