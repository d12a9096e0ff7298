"""Errors are JSON with a clear message: bad input is a 4xx, never a 5xx."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import (
    Conflict,
    GitError,
    InputError,
    InvalidName,
    NotFound,
    OrchError,
    StaleState,
    StoreError,
)

log = logging.getLogger(__name__)

# The most specific class first.
STATUS = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidName, 422),
    (InputError, 400),
    (GitError, 409),  # the repository is not in a state that allows it
    (StaleState, 409),  # someone else changed it first: look again
    (StoreError, 503),  # the database is unavailable: not the caller's fault, and passing
)


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _methods_of(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path`."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path_regex.fullmatch(path):
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Translate every error into `{"error": ...}` with the right status."""

    @app.exception_handler(OrchError)
    async def orch_error(_request: Request, exc: OrchError) -> JSONResponse:
        for kind, status in STATUS:
            if isinstance(exc, kind):
                return _error(status, str(exc))
        log.error("unexpected orchestrator error: %s", exc)
        return _error(500, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return _error(422, "; ".join(problems) or "invalid request", detail=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only;
            # each method of a path is a route of its own here.
            response.headers["Allow"] = ", ".join(_methods_of(request.app, request.url.path))
        return response

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(500, "internal error; see the server log")
