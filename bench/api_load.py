"""/queue and /status under load: 10,000 tasks stored, 50 concurrent clients.

Stores N tasks (most of them done with their stage history, `--active` of them spread over
the active stages with a queued job), starts the real server (`orch serve --no-worker`) as
its own process, and has C concurrent clients ask for /queue and /status in turn for S
seconds over keep-alive connections. Prints p50/p99 per endpoint and requests per second.
Target (SPEC section 14): p99 < 50 ms at 50 concurrent clients with 10,000 tasks.

The clients are asyncio coroutines speaking plain HTTP/1.1 (a load generator, not a
library: an HTTP client library costs more CPU per request than the server does, and on
two cores it would measure itself). Clients ask as fast as they can unless given a
`--pause`.

`/status` and `/queue` are served from a cache recomputed at most once a second (the
`cache_ttl_s` of `create_app`, `DocumentCache` in api/state.py). `--no-cache` serves them
with a TTL of 0 instead (the same app and uvicorn settings as `orch serve`, started by this
script): every request is answered from a computation over the stored tasks begun after it
arrived, shared by the requests that arrived with it (`Fresh` in api/state.py): the cost of
the documents themselves, which the cache hides. `--alone` goes further: each request
computes its own document, shared with none.

    .venv/bin/python bench/api_load.py --tasks 10000 --clients 50 --seconds 10 [--pause S]
        [--no-cache [--alone]] [--db-url URL of a PostgreSQL server]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from common import percentile, scratch_database
from history import store_tasks

from orchestrator.api.state import DocumentCache
from orchestrator.settings import load_settings
from orchestrator.store import open_store

ENDPOINTS = ("/queue", "/status")
START_TIMEOUT_S = 30.0


@contextmanager
def serving(
    home: Path, db_url: str | None, cached: bool, alone: bool = False
) -> Iterator[tuple[str, int]]:
    """The server as its own process on a free port; yields (host, port).

    Cached: `orch serve --no-worker`, as users run it. Uncached: this script's `--serve`,
    the same app with a cache TTL of 0. SystemExit, with the server's own last words, when
    it does not answer within START_TIMEOUT_S: figures from no server would be meaningless.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ORCH_HOME": str(home), "ORCH_PORT": str(port)}
    if db_url:
        env["ORCH_DB_URL"] = db_url
    if cached:
        argv = [str(Path(sys.executable).with_name("orch")), "serve", "--no-worker"]
    else:
        argv = [sys.executable, __file__, "--serve", *(["--alone"] if alone else [])]
    home.mkdir(parents=True, exist_ok=True)  # on PostgreSQL nothing else has made it
    log = home / "server.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(argv, env=env, stdout=stderr, stderr=stderr)
    try:
        _wait_until_up(server, port, log)
        yield "127.0.0.1", port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _wait_until_up(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    how = (
        f"exited with status {server.returncode}"
        if server.poll() is not None
        else f"did not answer on port {port} within {START_TIMEOUT_S:g} s"
    )
    last = log.read_text(errors="replace").strip().splitlines()[-20:]
    raise SystemExit("api_load: the server " + how + "".join(f"\n  {line}" for line in last))


class Alone(DocumentCache):
    """Each request computes its own document, in a thread of its own (`--alone`)."""

    async def get(self, key: str, compute: Callable[[], Any]) -> bytes:
        return await anyio.to_thread.run_sync(lambda: json.dumps(compute()).encode())


def serve_uncached(alone: bool) -> int:
    """`--serve`: the API as `orch serve --no-worker` serves it, with the cache off."""
    import uvicorn

    from orchestrator.api import create_app

    settings = load_settings()
    store = open_store(settings)
    app = create_app(settings, store, cache_ttl_s=0)
    if alone:
        app.state.orch.cache = Alone(0)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
    store.close()
    return 0


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    """One GET on a keep-alive connection; returns the status code. The Host is the loopback
    name the server answers (the API's door refuses any other name)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return status


async def client(
    host: str,
    port: int,
    until: float,
    pause: float,
    offset: int,
    latencies: dict[str, list[float]],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = offset
    while time.monotonic() < until:
        path = ENDPOINTS[n % len(ENDPOINTS)]
        started = time.perf_counter()
        status = await get(reader, writer, path)
        latencies[path].append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        n += 1
        if pause:
            await asyncio.sleep(pause)
    writer.close()


async def load(host: str, port: int, args: argparse.Namespace) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    until = time.monotonic() + args.seconds
    await asyncio.gather(
        *(client(host, port, until, args.pause, n, latencies) for n in range(args.clients))
    )
    return latencies


def cache_mode(args: argparse.Namespace) -> str:
    if not args.no_cache:
        return "on (1 s)"
    return "off, each request alone" if args.alone else "off, computations shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=200, help="tasks not done [200]")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.0, help="between a client's requests")
    parser.add_argument(
        "--db-url",
        default=None,
        help="PostgreSQL server (a new database there, dropped after); default: SQLite",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="compute /status and /queue on every request"
    )
    parser.add_argument(
        "--alone", action="store_true", help="with --no-cache: no request shares a computation"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server
    args = parser.parse_args()
    if args.serve:
        return serve_uncached(args.alone)
    if args.alone and not args.no_cache:
        parser.error("--alone goes with --no-cache")

    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-bench-"))
        db_url = stack.enter_context(scratch_database(args.db_url)) if args.db_url else None
        settings = load_settings(home=Path(tmp) / "home", db_url=db_url)
        store = open_store(settings)
        started = time.monotonic()
        store_tasks(store, args.tasks, min(args.active, args.tasks))
        print(f"stored {args.tasks} tasks in {time.monotonic() - started:.1f} s")
        store.close()
        server = serving(Path(tmp) / "home", db_url, not args.no_cache, args.alone)
        with server as (host, port):
            asyncio.run(load(host, port, argparse.Namespace(**{**vars(args), "seconds": 1.0})))
            started = time.monotonic()  # the run above warmed the connections and the cache
            latencies = asyncio.run(load(host, port, args))
            elapsed = time.monotonic() - started

    total = sum(len(values) for values in latencies.values())
    print(
        f"{args.clients} clients (pause {args.pause} s) for {args.seconds:.0f} s, "
        f"{args.tasks} tasks ({min(args.active, args.tasks)} active), "
        f"store: {'PostgreSQL' if args.db_url else 'SQLite'}, "
        f"cache: {cache_mode(args)}: {total / elapsed:.0f} req/s"
    )
    for path in ENDPOINTS:
        values = latencies[path]
        if not values:
            raise SystemExit(f"api_load: no answer from {path} in {args.seconds:g} s")
        print(
            f"{path:8} {len(values):6} requests  p50 {percentile(values, 0.5) * 1000:7.1f} ms  "
            f"p99 {percentile(values, 0.99) * 1000:7.1f} ms  (target p99 < 50 ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
