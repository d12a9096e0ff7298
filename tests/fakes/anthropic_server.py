"""A local Anthropic Messages API whose model is a `Script`: the real Claude Code runs against it.

Only the model is a stand-in: the CLI, its tools, its permission checks and its retries are the
real ones, so a test sees what production sees. The server streams SSE like api.anthropic.com,
tells the CLI's side calls (session titles) from the agent loop and answers them itself, and
reports deterministic usage so tests can check what the orchestrator records.

Observed with Claude Code 2.1.197: its final `result.usage` sums the main calls only (`served`);
`modelUsage` and `total_cost_usd` also count the side calls (`side`). After a stream that breaks
off, the CLI asks again without streaming, and then its `result.usage` is all zeros.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.model_script import (
    ApiError,
    Edit,
    Exchange,
    Reply,
    Script,
    Served,
    Shell,
    Stall,
    Text,
    Write,
)

MODEL = "claude-sonnet-4-5"  # a model the CLI knows the price of, so its cost is predictable
# Fixed per response, so tests can predict the totals: the real API reports both on every call.
CACHE_READ_TOKENS = 1000
CACHE_WRITE_TOKENS = 200
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
SIDE_TITLE = "Scripted task"  # what side calls get: short, harmless, valid as a session title
READ_PREFIX = "toolu_read_"  # ids of the Reads the server inserts before an Edit or overwrite
REMINDER = "<system-reminder>"  # Claude Code's own blocks before the prompt in the first message
WORKDIR = re.compile(r"Primary working directory: (\S+)")  # from the CLI's system prompt


def claude_home(home: Path) -> dict[str, str]:
    """Make `home` a HOME for Claude Code, and return the variables naming it.

    A fresh HOME keeps the developer's settings, hooks, memory and credentials out of the test.
    Print mode runs headless even in an empty one; the onboarding flags only spare the CLI its
    first-start bookkeeping.
    """
    home.mkdir(parents=True, exist_ok=True)
    config = {"hasCompletedOnboarding": True, "numStartups": 1, "autoUpdates": False}
    (home / ".claude.json").write_text(json.dumps(config))
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def _text(content: object) -> str:
    """The text of a message's or tool result's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(_text(b.get("text", b.get("content"))) for b in content if isinstance(b, dict))


def _prompt(content: object) -> str:
    """The orchestrator's text in the first user message, without Claude Code's reminders."""
    if not isinstance(content, list):
        return _text(content)
    texts = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
    own = [b for b in texts if not str(b.get("text", "")).startswith(REMINDER)]
    return _text(own or texts)


def _blocks(message: object, kind: str) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _messages(body: dict[str, Any], role: str) -> list[dict[str, Any]]:
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    return [m for m in messages if isinstance(m, dict) and m.get("role") == role]


def _needs_read(body: dict[str, Any], path: str, edit: bool) -> bool:
    """Whether Claude Code would refuse this Edit or Write: it must see a file before changing it.

    It answers "File has not been read yet. Read it first before writing to it." to an Edit of
    any file and to a Write over an existing one, unless this conversation read or wrote it.
    """
    seen = any(
        b.get("name") in ("Read", "Write", "Edit") and b.get("input", {}).get("file_path") == path
        for m in _messages(body, "assistant")
        for b in _blocks(m, "tool_use")
    )
    if seen or edit:
        return not seen
    found = WORKDIR.search(json.dumps(body.get("system", "")))
    base = Path(found.group(1)) if found else Path.cwd()
    return (base / path).exists()  # a relative path is the CLI's working directory's


class AnthropicServer:
    """`POST /v1/messages` on 127.0.0.1, answered by a `Script`; use it as a context manager.

    Scripts need not Read before an Edit: the server inserts the Read the CLI demands and
    sends the Edit on the next call, without asking the script (that call is still one of
    `served.exchanges`, which holds one exchange per request, retries included).
    """

    def __init__(self, script: Script, capture: Path | None = None) -> None:
        self.script = script
        self.capture = capture  # a folder where every request is logged (to study the CLI)
        self.served = Served()  # usage of the main calls; `exchanges`: every call, side ones too
        self.side = Served()  # usage and exchanges of the side calls only
        self.errors: list[BaseException] = []  # what the script raised (answered with a 500)
        self.stopping = threading.Event()  # wakes a `Stall`, so stop() is quick
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[str, Reply] = {}  # an inserted Read's id -> the reply it precedes
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def env(self, home: Path | None = None, max_retries: int = 0) -> dict[str, str]:
        """The variables that point the CLI here and keep it off the internet.

        The CLI retries failed calls itself (10 times by default, backing off up to 32 s each;
        a `retry-after` header can only lengthen the wait), so tests set `max_retries`.
        Inherited ANTHROPIC_* / CLAUDE_* variables (auth tokens, Bedrock...) should be dropped.
        """
        env = {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_MODEL": MODEL,
            "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
            "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # also: no title side call
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
        return env | (claude_home(home) if home is not None else {})

    def start(self) -> AnthropicServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a stalled answer wakes up and its (daemon) thread ends."""
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> AnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):04d}"

    def exchange(self, body: dict[str, Any]) -> Exchange:
        """What the script sees of a request; the Reads the server inserted are not turns."""
        users = _messages(body, "user")
        turns = [
            m
            for m in _messages(body, "assistant")
            if not any(str(b.get("id")).startswith(READ_PREFIX) for b in _blocks(m, "tool_use"))
        ]
        results = _blocks(users[-1], "tool_result") if users else []
        return Exchange(
            prompt=_prompt(users[0].get("content")) if users else "",
            turn=len(turns),
            tool_results=tuple(_text(b.get("content")) for b in results),
            model=str(body.get("model", "")),
            main=bool(body.get("tools")),  # side calls (titles) offer no tools
        )

    def reply(self, body: dict[str, Any], exchange: Exchange) -> Reply:
        """The script's reply; or the one an inserted Read was for; or a side call's title."""
        if not exchange.main:
            wants_json = isinstance(body.get("output_config"), dict)
            return Text(json.dumps({"title": SIDE_TITLE}) if wants_json else SIDE_TITLE)
        last = _messages(body, "user")[-1:]
        for block in _blocks(last[0] if last else {}, "tool_result"):
            with self._lock:
                pending = self._pending.pop(str(block.get("tool_use_id")), None)
            if pending is not None:
                return pending
        return self.script(exchange)

    def content(self, reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The content blocks of the model's answer to `reply`."""
        if isinstance(reply, Text):
            return [{"type": "text", "text": reply.text}]
        if isinstance(reply, Shell):
            return [self._tool("Bash", {"command": reply.command, "description": "Run command"})]
        assert isinstance(reply, Write | Edit), reply
        if _needs_read(body, reply.path, isinstance(reply, Edit)):
            read = self._tool("Read", {"file_path": reply.path}, READ_PREFIX)
            with self._lock:
                self._pending[read["id"]] = reply
            return [read]
        if isinstance(reply, Write):
            return [self._tool("Write", {"file_path": reply.path, "content": reply.content})]
        edit = {"file_path": reply.path, "old_string": reply.old, "new_string": reply.new}
        return [self._tool("Edit", edit)]

    def _tool(self, name: str, args: dict[str, str], prefix: str = "toolu_") -> dict[str, Any]:
        return {"type": "tool_use", "id": self.next_id(prefix), "name": name, "input": args}

    def usage(
        self, raw: bytes, content: list[dict[str, Any]], totals: Served | None
    ) -> dict[str, int]:
        """Deterministic usage of one response, added to `totals`."""
        usage = {
            "input_tokens": 100 + len(raw) // 50,
            "output_tokens": 10 + len(json.dumps(content)) // 20,
            "cache_read_input_tokens": CACHE_READ_TOKENS,
            "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        }
        if totals is None:
            return usage
        with self._lock:
            totals.tokens_in += usage["input_tokens"]
            totals.tokens_out += usage["output_tokens"]
            totals.cache_read_tokens += CACHE_READ_TOKENS
            totals.cache_write_tokens += CACHE_WRITE_TOKENS
        return usage


def _handler(server: AnthropicServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"owner": server})


class _Handler(BaseHTTPRequestHandler):
    owner: AnthropicServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the CLI expects of the real API

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the CLI's, not the server's access log."""

    def do_GET(self) -> None:
        self._read_body()
        self._json(404, _error(404, f"no route {self.path}"))

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]  # the CLI posts to /v1/messages?beta=true
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        if path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 100 + len(raw) // 50})
        elif path == "/v1/messages" and isinstance(body, dict):
            self._answer(raw, body)
        else:
            self._json(404, _error(404, f"no route {self.path}"))

    def _read_body(self) -> bytes:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        capture = self.owner.capture
        if capture is not None:
            capture.mkdir(parents=True, exist_ok=True)
            entry = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
            entry["body"] = raw.decode("utf-8", "replace")
            (capture / f"{self.owner.next_id('request-')}.json").write_text(json.dumps(entry))
        return raw

    def _answer(self, raw: bytes, body: dict[str, Any]) -> None:
        owner = self.owner
        exchange = owner.exchange(body)
        with owner._lock:
            owner.served.exchanges.append(exchange)
            if not exchange.main:
                owner.side.exchanges.append(exchange)
        try:
            reply = owner.reply(body, exchange)
        except Exception as exc:  # a broken script must fail the test, not hang the CLI
            owner.errors.append(exc)
            reply = ApiError(500, f"script raised {exc!r}")
        if isinstance(reply, ApiError):
            retry = {"retry-after": "0"} if reply.status in (429, 529) else {}
            self._json(reply.status, _error(reply.status, reply.message), retry)
            return
        content = [] if isinstance(reply, Stall) else owner.content(reply, body)
        totals = owner.served if exchange.main else owner.side
        # A stalled answer never completes: the CLI never counts it, neither do we.
        usage = owner.usage(raw, content, None if isinstance(reply, Stall) else totals)
        stop = "tool_use" if content and content[-1]["type"] == "tool_use" else "end_turn"
        message = {
            "id": owner.next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": exchange.model or MODEL,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        try:
            if body.get("stream"):
                self._stream(message, reply)
            elif isinstance(reply, Stall):
                owner.stopping.wait(reply.seconds)
            else:
                self._json(200, message)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI gave up on this answer (killed, timed out): nobody to tell

    def _stream(self, message: dict[str, Any], reply: Reply) -> None:
        """Send `message` as the API's SSE events; a `Stall` goes quiet after `message_start`."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 1}  # the final count comes last
        self._event("message_start", {"message": start})
        if isinstance(reply, Stall):
            self.owner.stopping.wait(reply.seconds)
            return
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                opening = {**block, "text": ""}
                deltas = [{"type": "text_delta", "text": block["text"]}]
            else:
                opening = {**block, "input": {}}
                args = json.dumps(block["input"])
                step = len(args) // 3 + 1  # a few chunks, as the real API splits them
                parts = [args[at : at + step] for at in range(0, len(args), step)]
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
            self._event("content_block_start", {"index": index, "content_block": opening})
            for delta in deltas:
                self._event("content_block_delta", {"index": index, "delta": delta})
            self._event("content_block_stop", {"index": index})
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        usage = {"output_tokens": message["usage"]["output_tokens"]}
        self._event("message_delta", {"delta": delta, "usage": usage})
        self._event("message_stop", {})

    def _event(self, name: str, data: dict[str, Any]) -> None:
        payload = json.dumps({"type": name, **data})
        self.wfile.write(f"event: {name}\ndata: {payload}\n\n".encode())
        self.wfile.flush()

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", self.owner.next_id("req_"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _error(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body: the CLI reads `error.type` to word and classify the failure."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}
