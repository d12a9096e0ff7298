"""Taking the hold on the self repo at start (store/self_hold.py says what it is).

A supervisor that was killed leaves its hold behind until the lease runs out; restarted on
the same host, it must not wait that long, or the restart would come up without settling
the self deploy it was in the middle of. So a hold whose holder ran on this host and whose
process is gone is taken at once, as a dead worker's jobs are.
"""

from __future__ import annotations

import os
import secrets
import socket

import psutil

from orchestrator.proc import host_identity
from orchestrator.store import SelfHold, Store


def left_by_the_dead(held: SelfHold, here: str, alive: bool) -> bool:
    """True when `held` was left by a process of this host that is gone."""
    return held.host == here and not alive


def take_self_repo(store: Store, lease_s: float) -> tuple[str, SelfHold]:
    """(our holder id, who holds the self repo now): we do when the two match."""
    holder = f"serve-{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(3)}"
    here, pid = host_identity(), os.getpid()
    held = store.take_self_hold(holder, here, pid, lease_s)
    if held.holder != holder and left_by_the_dead(held, here, psutil.pid_exists(held.pid)):
        held = store.take_self_hold(holder, here, pid, lease_s, replacing=held.holder)
    return holder, held
