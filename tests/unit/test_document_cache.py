"""The cache in front of /status and /queue: one computation per TTL, never a herd."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from orchestrator.api import create_app
from orchestrator.api.state import DocumentCache
from orchestrator.store import Store
from tests.api_server import running_app
from tests.api_support import settings_for


class Counting:
    """A document computation that counts its calls and takes a while."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.calls = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, int]:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.seconds)
        return {"n": n}


async def _many(
    cache: DocumentCache, compute: Callable[[], dict[str, int]], clients: int
) -> list[bytes]:
    return await asyncio.gather(*(cache.get("status", compute) for _ in range(clients)))


def test_fifty_clients_of_a_cold_cache_share_one_computation() -> None:
    cache, compute = DocumentCache(ttl_s=60), Counting()
    bodies = asyncio.run(_many(cache, compute, 50))
    assert compute.calls == 1
    assert {json.loads(body)["n"] for body in bodies} == {1}


def test_a_stale_document_is_served_while_one_refresh_runs() -> None:
    cache, compute = DocumentCache(ttl_s=0.01), Counting(seconds=0)
    asyncio.run(cache.get("status", compute))
    time.sleep(0.05)  # stale now
    release = threading.Event()
    blocked = Counting(seconds=0)

    def refresh() -> dict[str, int]:
        release.wait(timeout=30)  # the refresh cannot finish until the readers are served
        return {"n": 100 + blocked()["n"]}

    # Were any reader waiting for the refresh, this would never return.
    bodies = asyncio.run(_many(cache, refresh, 20))
    assert {json.loads(body)["n"] for body in bodies} == {1}
    release.set()
    deadline = time.monotonic() + 10
    while (seen := json.loads(asyncio.run(cache.get("status", compute)))["n"]) == 1:
        assert time.monotonic() < deadline, "the refresh never landed"
        time.sleep(0.01)
    assert seen == 101  # no other refresh started while that one ran
    assert blocked.calls == 1  # one refresh for twenty stale reads


def test_a_ttl_of_zero_computes_on_every_request() -> None:
    cache, compute = DocumentCache(ttl_s=0), Counting(seconds=0)
    asyncio.run(_many(cache, compute, 5))
    assert compute.calls == 5


def test_the_service_moves_its_start_up_heap_out_of_the_collectors_sight(
    store: Store, db_url: str, orch_home: Path
) -> None:
    gc.unfreeze()  # whatever an earlier server left
    with running_app(create_app(settings_for(db_url, orch_home), store)) as base_url:
        assert gc.get_freeze_count() > 0
        assert httpx.get(f"{base_url}/health").status_code == 200
    assert gc.get_freeze_count() == 0
