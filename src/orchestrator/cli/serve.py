"""`orch serve`: the HTTP API and dashboard, with the worker in the same process."""

from __future__ import annotations

import signal
import threading

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import notice
from orchestrator.cli.worker import configure_logging
from orchestrator.errors import ConfigError
from orchestrator.settings import is_loopback


@click.command()
@click.option("--host", help="Address to bind [default: ORCH_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: ORCH_PORT, 8765].")
@click.option("--no-worker", is_flag=True, help="Serve only; run `orch worker` elsewhere.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@pass_app
def serve(
    app: AppContext, host: str | None, port: int | None, no_worker: bool, verbose: bool
) -> None:
    """Serve the API and the dashboard (and run the worker unless --no-worker)."""
    settings = app.settings
    host = host or settings.host
    port = port or settings.port
    if not is_loopback(host) and not settings.token:
        raise ConfigError(f"refusing to serve on {host} without ORCH_API_TOKEN: set a token")
    # Imported here: the web stack costs a quarter second that other commands need not pay.
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.scheduler import Worker

    configure_logging(verbose)
    store = app.store
    worker = None if no_worker else Worker(store, settings)
    thread = None
    if worker is not None:
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
        thread.start()
    notice(
        f"serving on http://{host}:{port}/ " + ("(API only)" if no_worker else "(with a worker)")
    )
    config = uvicorn.Config(
        create_app(settings, store),
        host=host,
        port=port,
        log_level="debug" if verbose else "warning",
        # An open dashboard keeps an event stream open: never wait on it for long.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    # Once shut down, uvicorn raises the signal that stopped it again, for the handler it
    # found: the default one would kill the process before the worker below is stopped.
    # The server's own handler absorbs it (and stops a server not yet listening).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, server.handle_exit)
    try:
        server.run()  # returns on SIGINT/SIGTERM
    finally:
        if worker is not None and thread is not None:
            worker.stop()
            thread.join(timeout=settings.kill_grace_s + 30)
