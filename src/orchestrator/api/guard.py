"""The door: who may reach the API at all, decided before a byte of the body is read.

A server on 127.0.0.1 is still reachable from every web page the user opens: a page can POST
a form to it (no preflight for form content types), and a DNS-rebinding page can talk to it
under a name of its own. The product's writes run commands (a repo's test command is run by
the worker), so this is code execution from a browser. The defences are those of Jupyter
and the Docker daemon:

- **Host**: only the names the server is bound to, the loopback names and configured ones
  (`ORCH_ALLOWED_HOSTS`) are answered; a rebinding page's own name is not.
- **Token**: every write needs the API token, always (one is generated into `ORCH_HOME` when
  none is configured); on a bind that is not loopback, reads need it too. The token is
  checked from the headers, before the body is read.
- **Origin**: a write from a browser must come from the server's own origin.
- **Size**: no body is larger than `ORCH_MAX_BODY_BYTES` (413), whatever it claims.

`decide` is pure (plain values in, a refusal or None out); `Guard` is the ASGI shell around it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.settings import TOKEN_FILE, Settings, is_loopback

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Probes (load balancers, supervisors) may ask whether the service is up without the token.
OPEN_PATHS = frozenset({"/health"})
COOKIE = "orch_token"


@dataclass(frozen=True)
class Policy:
    """What the door lets in, from the settings and the bind."""

    token: str
    allowed_hosts: frozenset[str]  # lower case, no port, IPv6 without brackets
    any_ip_host: bool  # a wildcard bind (0.0.0.0, ::): any IP literal names this server
    reads_need_token: bool  # the bind is not loopback
    max_body_bytes: int


@dataclass(frozen=True)
class Refusal:
    """The answer instead of the endpoint's."""

    status: int
    error: str
    headers: tuple[tuple[str, str], ...] = ()


def service_token(settings: Settings) -> str:
    """The API token: `ORCH_API_TOKEN` when set, else the one generated into
    `$ORCH_HOME/api-token` at first start (readable by its owner only), so that no write is
    ever anonymous."""
    if settings.token:
        return settings.token
    path = settings.home / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    settings.home.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    partial.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    partial.chmod(0o600)
    try:
        os.link(partial, path)  # the first start wins a race; every start reads its token
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_text(encoding="utf-8").strip()


def policy_for(settings: Settings) -> Policy:
    """The door of a server bound to `settings.host`."""
    bind = settings.host.strip("[]").lower()
    return Policy(
        token=service_token(settings),
        allowed_hosts=LOOPBACK_NAMES | {bind} | {h.lower() for h in settings.allowed_hosts},
        any_ip_host=bind in ("0.0.0.0", "::"),
        reads_need_token=not is_loopback(bind),
        max_body_bytes=settings.max_body_bytes,
    )


def host_name(header: str) -> str:
    """The name in a Host header, without its port, lower case (`[::1]:8765` -> `::1`)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def given_token(headers: dict[str, str]) -> str | None:
    """The token a request carries: a bearer header, or the dashboard's cookie."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except CookieError:  # a malformed Cookie header carries no token
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else None


def decide(method: str, path: str, headers: dict[str, str], policy: Policy) -> Refusal | None:
    """Why this request may not reach the API, or None when it may. `headers` keys are
    lower case."""
    host = host_name(headers.get("host", ""))
    if host not in policy.allowed_hosts and not (policy.any_ip_host and _is_ip(host)):
        return Refusal(
            403,
            f"Host {host or '(none)'!r} is not a name this server answers to "
            "(add it to ORCH_ALLOWED_HOSTS)",
        )
    write = method.upper() not in SAFE_METHODS
    if (write or policy.reads_need_token) and path not in OPEN_PATHS:
        token = given_token(headers)
        if token is None or not secrets.compare_digest(token.encode(), policy.token.encode()):
            what = "this endpoint needs" if write else "reads on this bind need"
            return Refusal(
                401,
                f"{what} Authorization: Bearer <token> (ORCH_API_TOKEN, or the token "
                "`orch serve` printed)",
                (("www-authenticate", "Bearer"),),
            )
    if write:
        origin = headers.get("origin")
        # An origin is scheme, name and port: a page on another local port is another site.
        if origin is not None and urlsplit(origin).netloc.lower() != headers["host"].lower():
            return Refusal(403, f"a write from another origin ({origin}) is refused")
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return Refusal(403, "a write from another site is refused")
    length = headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > policy.max_body_bytes):
        return _too_large(policy)
    return None


def _too_large(policy: Policy) -> Refusal:
    return Refusal(
        413, f"the request body is over {policy.max_body_bytes} bytes (ORCH_MAX_BODY_BYTES)"
    )


class BodyTooLarge(HTTPException):
    """Raised while a body streams past the cap; an HTTPException, so that the framework's
    body parsing passes it on as the 413 it is instead of calling it a malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes (ORCH_MAX_BODY_BYTES)")


class Guard:
    """ASGI middleware: `decide` on the headers, then a body cap while the body streams."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        login = _login(scope, headers, self.policy)
        if login is not None:
            await _answer(send, 303, b"", login)
            return
        refusal = decide(scope["method"], scope["path"], headers, self.policy)
        if refusal is not None:
            await _refuse(send, refusal)
            return
        received = 0
        started = False

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.policy.max_body_bytes:
                    raise BodyTooLarge(self.policy.max_body_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, watched)
        except BodyTooLarge:
            if not started:
                await _refuse(send, _too_large(self.policy))


def _login(scope: Scope, headers: dict[str, str], policy: Policy) -> list[tuple[str, str]] | None:
    """A dashboard link with `?token=<token>` (what `orch serve` prints on a bind that is not
    loopback): set the token as a strict, HTTP-only cookie and redirect to the same page
    without it, so that the token leaves the address bar and the history."""
    if scope["method"] != "GET" or decide("GET", "/health", headers, policy) is not None:
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    given = query.pop("token", [None])[-1]
    if given is None or not secrets.compare_digest(given.encode(), policy.token.encode()):
        return None
    rest = urlencode(query, doseq=True)
    return [
        ("location", scope["path"] + (f"?{rest}" if rest else "")),
        ("set-cookie", f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"),
    ]


async def _refuse(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"error": refusal.error}).encode()
    await _answer(
        send, refusal.status, body, [("content-type", "application/json"), *refusal.headers]
    )


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
