"""What every request handler shares: settings, store, identity of the running code."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Depends, Request

import orchestrator
from orchestrator.redact import secret_values
from orchestrator.selfhost.code import code_commit
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.base import utcnow

log = logging.getLogger(__name__)


class Fresh:
    """Documents computed for the requests that wait for them, shared by the requests that
    arrive while one is being computed: each request is answered from a computation that
    began after it arrived, so it reads every write made before it, as if it had computed
    alone; fifty requests at once cost two computations, not fifty in a row.

    The waiting is the event loop's (a request waits as a coroutine, not a thread); one
    thread computes.
    """

    def __init__(self) -> None:
        self._begun: dict[str, asyncio.Task[bytes]] = {}  # the computation under way
        self._next: dict[str, asyncio.Task[bytes]] = {}  # the one that begins after it

    async def get(self, key: str, compute: Callable[[], Any]) -> bytes:
        """The document, from a computation begun after this call."""
        waiting = self._next.get(key)
        if waiting is None:  # none waits to begin: one begins after the one under way
            waiting = asyncio.ensure_future(self._after(self._begun.get(key), key, compute))
            self._next[key] = waiting
        # A client that hangs up cancels its own wait, not the others' computation.
        return await asyncio.shield(waiting)

    async def _after(
        self, before: asyncio.Task[bytes] | None, key: str, compute: Callable[[], Any]
    ) -> bytes:
        if before is not None:
            await asyncio.wait([before])  # what it read may predate our requests
        me = asyncio.current_task()
        assert me is not None
        if self._next.get(key) is me:
            del self._next[key]  # begun: a request from now on waits for the next one
        self._begun[key] = me
        try:
            return await anyio.to_thread.run_sync(lambda: _render(compute()))
        finally:
            if self._begun.get(key) is me:
                del self._begun[key]


def _render(document: Any) -> bytes:
    # orjson: a tenth of the json module's time on /queue's 200 jobs (0.07 against 0.73 ms),
    # paid on every computation while the requests that share it wait.
    return orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)


class DocumentCache:
    """Serves a computed JSON document to many clients; recomputes it at most once per TTL.

    A stale document is served while one background thread recomputes it (stale while
    revalidate): no request waits for a computation except the very first. A TTL of 0
    serves no document computed before the request arrived (tests, and anything that must
    read its own writes); requests that arrive together share one computation (`Fresh`).
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._fresh = Fresh()
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._refreshing: set[str] = set()
        self._first_gates: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    async def get(self, key: str, compute: Callable[[], Any]) -> bytes:
        """The document as JSON bytes."""
        entry = self._entries.get(key)
        if self.ttl_s <= 0:
            return await self._fresh.get(key, compute)
        if entry is None:
            return await anyio.to_thread.run_sync(self._first, key, compute)
        if time.monotonic() - entry[0] >= self.ttl_s:
            with self._lock:
                start = key not in self._refreshing
                self._refreshing.add(key)
            if start:
                threading.Thread(
                    target=self._refresh, args=(key, compute), name=f"refresh {key}", daemon=True
                ).start()
        return entry[1]

    def _first(self, key: str, compute: Callable[[], Any]) -> bytes:
        # The first clients of a cold cache wait for one computation, not one each: fifty
        # of them at once would otherwise compute fifty times, one after the other.
        with self._lock:
            gate = self._first_gates.setdefault(key, threading.Lock())
        with gate:
            entry = self._entries.get(key)
            return entry[1] if entry is not None else self._compute(key, compute)

    def _compute(self, key: str, compute: Callable[[], Any]) -> bytes:
        body = _render(compute())
        self._entries[key] = (time.monotonic(), body)
        return body

    def _refresh(self, key: str, compute: Callable[[], Any]) -> None:
        try:
            self._compute(key, compute)
        except Exception:
            log.exception("refreshing %s failed; serving the previous document", key)
        finally:
            with self._lock:
                self._refreshing.discard(key)


@dataclass
class ApiState:
    """Created at start-up and kept on `app.state.orch`."""

    settings: Settings
    store: Store
    cache: DocumentCache
    started_at: datetime = field(default_factory=utcnow)
    started_monotonic: float = field(default_factory=time.monotonic)
    commit: str | None = field(default_factory=code_commit)
    version: str = orchestrator.__version__
    # In `orch serve`: why its worker cannot run jobs now (dead, or cut off from the
    # database), or None; `/health` is degraded while it says something.
    worker_problem: Callable[[], str | None] | None = None

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """What must never be served: read once (the environment and the token file), not
        on every request that masks."""
        return secret_values(self.settings)


async def get_state(request: Request) -> ApiState:
    """The shared state (a FastAPI dependency). A coroutine, so that FastAPI calls it on the
    event loop: a plain function it would run in a worker thread, a thread hop on every
    request (a sixth of the server's time under load) competing for the threads that compute
    the documents."""
    state: ApiState = request.app.state.orch
    return state


State = Annotated[ApiState, Depends(get_state)]


def server_exiting() -> bool:
    """True once `orch serve`'s uvicorn has been told to stop (SIGTERM, Ctrl-C).

    Uvicorn waits for every open response before it stops, and an event stream does not end
    by itself; uvicorn's signal handler is a method of its server, whose `should_exit` says
    whether it is stopping. Elsewhere (a server in a thread) STREAM_MAX_S bounds the wait.
    """
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return getattr(server, "should_exit", False) is True
