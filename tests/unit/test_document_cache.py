"""The cache in front of /status and /queue: one computation per TTL, never a herd; with the
cache off, fresh documents shared by the requests that wait for them."""

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
from orchestrator.api.state import DocumentCache, Fresh
from orchestrator.errors import StoreError
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


def test_a_ttl_of_zero_computes_for_each_request_that_comes_after_the_last() -> None:
    cache, compute = DocumentCache(ttl_s=0), Counting(seconds=0)
    for n in range(1, 4):
        assert json.loads(asyncio.run(cache.get("status", compute)))["n"] == n
    assert compute.calls == 3


def test_requests_during_a_computation_share_the_next_one_never_the_running_one() -> None:
    # What the first computation read may predate the writes a later request was made
    # after: the requests that arrive while it runs wait for one computation begun after
    # them all, and share it.
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            started.set()
            assert release.wait(30)
        return {"n": len(calls)}

    async def scenario() -> tuple[bytes, list[bytes]]:
        fresh = Fresh()
        first = asyncio.ensure_future(fresh.get("status", compute))
        assert await asyncio.to_thread(started.wait, 10)
        later = [asyncio.ensure_future(fresh.get("status", compute)) for _ in range(10)]
        await asyncio.sleep(0.05)  # the later requests are waiting
        release.set()
        return await first, await asyncio.gather(*later)

    first, later = asyncio.run(scenario())
    assert json.loads(first)["n"] == 1
    assert {json.loads(body)["n"] for body in later} == {2}
    assert calls == [1, 2]


def test_a_failed_computation_fails_every_request_that_waited_for_it() -> None:
    def broken() -> dict[str, int]:
        raise StoreError("database unavailable: gone")

    async def scenario() -> list[BaseException | bytes]:
        fresh = Fresh()
        failed = await asyncio.gather(
            *(fresh.get("queue", broken) for _ in range(5)), return_exceptions=True
        )
        return [*failed, await fresh.get("queue", lambda: {"n": 1})]  # the next computes

    *failed, recovered = asyncio.run(scenario())
    assert all(isinstance(outcome, StoreError) for outcome in failed)
    assert recovered == b'{"n":1}'


def test_a_client_that_hangs_up_does_not_cancel_the_others_computation() -> None:
    async def scenario() -> bytes:
        fresh = Fresh()
        gone = asyncio.ensure_future(fresh.get("status", Counting(seconds=0.1)))
        stays = asyncio.ensure_future(fresh.get("status", Counting(seconds=0.1)))
        await asyncio.sleep(0.02)
        gone.cancel()
        return await stays

    assert json.loads(asyncio.run(scenario())) == {"n": 1}


def test_the_service_moves_its_start_up_heap_out_of_the_collectors_sight(
    store: Store, db_url: str, orch_home: Path
) -> None:
    gc.unfreeze()  # whatever an earlier server left
    with running_app(create_app(settings_for(db_url, orch_home), store)) as base_url:
        assert gc.get_freeze_count() > 0
        assert httpx.get(f"{base_url}/health").status_code == 200
    assert gc.get_freeze_count() == 0
