"""The hold on the self repo at the store, on both backends (store/self_hold.py)."""

from __future__ import annotations

import time

from orchestrator.selfhost.hold import left_by_the_dead
from orchestrator.store import SelfHold, Store


def test_one_holder_at_a_time_until_its_lease_runs_out(store: Store) -> None:
    assert store.take_self_hold("a", "host-1", 10, 30).holder == "a"
    assert store.take_self_hold("b", "host-2", 20, 30) == SelfHold("a", "host-1", 10)
    assert store.holds_self("a") and not store.holds_self("b")
    assert store.take_self_hold("a", "host-1", 10, 0.2).holder == "a"  # renewed (shorter)
    time.sleep(0.4)
    assert not store.holds_self("a")  # lapsed: a holder that stopped renewing
    assert store.take_self_hold("b", "host-2", 20, 30).holder == "b"


def test_a_known_dead_holder_is_replaced_at_once_and_a_clean_stop_frees_it(store: Store) -> None:
    store.take_self_hold("a", "host-1", 10, 30)
    assert store.take_self_hold("b", "host-1", 20, 30, replacing="other").holder == "a"
    assert store.take_self_hold("b", "host-1", 20, 30, replacing="a").holder == "b"
    store.release_self_hold("a")  # not the holder: changes nothing
    assert store.holds_self("b")
    store.release_self_hold("b")
    assert store.take_self_hold("c", "host-3", 30, 30).holder == "c"


def test_only_a_gone_process_of_this_host_left_its_hold_behind() -> None:
    held = SelfHold("a", "vm~1a2b3c4d", 10)
    assert left_by_the_dead(held, "vm~1a2b3c4d", alive=False)
    assert not left_by_the_dead(held, "vm~1a2b3c4d", alive=True)
    assert not left_by_the_dead(held, "vm~99999999", alive=False)  # another host: the lease
