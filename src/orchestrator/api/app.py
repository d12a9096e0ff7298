"""The FastAPI application: the API, the dashboard, and (in `orch serve`) the worker."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from orchestrator import __version__
from orchestrator.api import dashboard, errors
from orchestrator.api.guard import Guard, policy_for
from orchestrator.api.models import ERROR_RESPONSES
from orchestrator.api.routes import alerts, repos, system, tasks
from orchestrator.api.state import ApiState, DocumentCache
from orchestrator.settings import Settings
from orchestrator.store import Store

DESCRIPTION = """A delivery pipeline for coding agents. Every write needs `Authorization:
Bearer <token>` (ORCH_API_TOKEN, or the token generated into $ORCH_HOME/api-token); reads
need it too unless the server is bound to a loopback address. Only the server's own host
names are answered, a write from another origin is refused, and no body is over
ORCH_MAX_BODY_BYTES. Errors are JSON: `{"error": "..."}`."""


def create_app(
    settings: Settings,
    store: Store,
    *,
    cache_ttl_s: float = 1.0,
    worker_problem: Callable[[], str | None] | None = None,
) -> FastAPI:
    """The application over an open store; /status and /queue are cached for `cache_ttl_s`;
    `worker_problem` (the worker of `orch serve`) makes /health degraded while it speaks."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything alive at start-up (the framework, the routes, the settings) lives as long
        # as the process: moved out of the collector's sight, a full collection no longer
        # walks it, which took /queue's p99 at 50 clients from 84 ms to 15 ms (api_load).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()

    app = FastAPI(
        title="orchestrator",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN, and this product works
        # offline: the schema is at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.orch = ApiState(
        settings=settings,
        store=store,
        cache=DocumentCache(cache_ttl_s),
        worker_problem=worker_problem,
    )
    errors.install(app)
    for module in (system, tasks, repos, alerts):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    app.include_router(dashboard.router)
    app.mount("/static", dashboard.static_files(), name="static")
    app.add_middleware(Guard, policy=policy_for(settings))
    return app
