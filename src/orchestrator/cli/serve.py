"""`orch serve`: the HTTP API and dashboard, with the worker in the same process.

For a repo registered with --self (the orchestrator's own checkout), `orch serve` runs under
a small supervisor by default: a self deploy restarts the service on the merged code, and
the supervisor rolls it back if the new code does not come up healthy.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import notice
from orchestrator.cli.worker import configure_logging
from orchestrator.errors import ConfigError
from orchestrator.settings import TOKEN_FILE, Settings, host_problem, is_loopback


def _child_argv(host: str, port: int, no_worker: bool, verbose: bool, holder: str) -> list[str]:
    argv = [sys.executable, "-m", "orchestrator", "serve", "--supervised", "--holder", holder]
    argv += ["--host", host, "--port", str(port)]
    return argv + (["--no-worker"] if no_worker else []) + (["-v"] if verbose else [])


@click.command()
@click.option("--host", help="Address to bind [default: ORCH_HOST, 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: ORCH_PORT, 8765].")
@click.option("--no-worker", is_flag=True, help="Serve only; run `orch worker` elsewhere.")
@click.option(
    "--supervise/--no-supervise",
    default=None,
    help="Run under a supervisor that restarts and rolls back self deploys "
    "[default: on when a repo is registered with --self].",
)
@click.option("--supervised", is_flag=True, hidden=True)
@click.option("--holder", hidden=True, help="The supervisor's hold on the self repo.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@pass_app
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    no_worker: bool,
    supervise: bool | None,
    supervised: bool,
    holder: str | None,
    verbose: bool,
) -> None:
    """Serve the API and the dashboard (and run the worker unless --no-worker)."""
    settings = app.settings
    host = settings.host if host is None else host
    port = port or settings.port
    problem = host_problem(host)
    if problem is not None:
        raise click.BadParameter(f"{host!r}: {problem}", param_hint="'--host'")
    if not is_loopback(host) and not settings.token:
        raise ConfigError(f"refusing to serve on {host} without ORCH_API_TOKEN: set a token")
    settings = settings.model_copy(update={"host": host, "port": port})
    configure_logging(verbose)
    store = app.store
    if supervise is None:
        supervise = any(repo.is_self for repo in store.list_repos())
    if supervise and not supervised:
        from orchestrator.selfhost.hold import take_self_repo

        holder, held = take_self_repo(store, settings.lease_s)
        if held.holder == holder:
            from orchestrator.selfhost.supervisor import Supervisor

            local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            notice(f"supervising the service on http://{host}:{port}/ (self deploys roll back)")
            argv = _child_argv(host, port, no_worker, verbose, holder)
            health = f"http://{local}:{port}/health"
            raise SystemExit(Supervisor(store, settings, argv, health, holder).run())
        # Its boot would settle, and its worker run, the self deploys of the holder.
        notice(
            f"another orch serve holds the self repo (pid {held.pid} on {held.host}): this one "
            "serves and runs ordinary jobs, never a self deploy"
        )
    holds = supervised and holder is not None and store.holds_self(holder)
    raise SystemExit(_serve(app, settings, host, port, no_worker, holds, verbose))


def _token_notice(settings: Settings) -> str:
    """Where the API token comes from (a generated one is shown: the user needs it)."""
    if settings.token:
        return "writes need the token in ORCH_API_TOKEN (Authorization: Bearer ...)"
    from orchestrator.api.guard import service_token

    token = service_token(settings)
    local = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    local = f"[{local}]" if ":" in local else local
    return (
        f"writes need the API token {token} (saved in {settings.home / TOKEN_FILE}); "
        f"the dashboard, signed in to work from it: http://{local}:{settings.port}/?token={token}"
    )


def _serve(
    app: AppContext,
    settings: Settings,
    host: str,
    port: int,
    no_worker: bool,
    holds_self: bool,
    verbose: bool,
) -> int:
    # Imported here: the web stack costs a quarter second that other commands need not pay.
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.scheduler import Worker
    from orchestrator.selfhost.boot import RESTART_EXIT, complete_pending_deploys
    from orchestrator.selfhost.hosting import SelfHosting

    store = app.store
    if holds_self:  # only the holder of the self repo (store/self_hold.py)
        complete_pending_deploys(store, settings)  # before the worker: see selfhost/boot.py
    restart = threading.Event()
    server: uvicorn.Server | None = None

    def request_restart() -> None:
        restart.set()
        if server is not None:
            server.should_exit = True

    worker = None
    if not no_worker:
        hosting = SelfHosting(restart=request_restart if holds_self else None)
        worker = Worker(store, settings, hosting=hosting)
    thread = None
    if worker is not None:
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    notice(
        f"serving on http://{host}:{port}/ " + ("(API only)" if no_worker else "(with a worker)")
    )
    notice(_token_notice(settings))
    config = uvicorn.Config(
        create_app(settings, store, worker_problem=worker.problem if worker else None),
        host=host,
        port=port,
        log_level="debug" if verbose else "warning",
        # An open dashboard keeps an event stream open: never wait on it for long.
        timeout_graceful_shutdown=5,
    )

    class Server(uvicorn.Server):
        # The worker starts only once the server accepts connections (after the lifespan
        # startup and the bind): a post-deploy-monitor watching the service's own /health
        # must never find it not yet listening.
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and thread is not None:
                thread.start()

    server = Server(config)
    # Once shut down, uvicorn raises the signal that stopped it again, for the handler it
    # found: the default one would kill the process before the worker below is stopped.
    # The server's own handler absorbs it (and stops a server not yet listening).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, server.handle_exit)
    try:
        server.run()  # returns on SIGINT/SIGTERM, or when a self deploy asks for a restart
    finally:
        if worker is not None and thread is not None and thread.is_alive():
            worker.stop()
            thread.join(timeout=settings.kill_grace_s + 30)
    if restart.is_set():
        notice("restarting on the merged code")
        return RESTART_EXIT
    return 0
