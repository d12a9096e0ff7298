"""A scripted model behind the OpenAI Responses API, for running the real Codex CLI in tests.

The model is the only stand-in: the real `codex exec` runs, with its real sandbox and tools,
against this server, which turns each `Reply` of a `Script` into the streamed (SSE) events of
`POST /v1/responses`. Tool replies become the calls Codex 0.169 offers its models: `Write` and
`Shell` are `exec_command` calls (so they run through Codex's sandbox, where a write outside
the writable roots fails with "Read-only file system" as it would for a real model), `Edit` is
an `apply_patch` custom tool call (Codex applies it itself, and rejects a path outside the
writable roots). Codex 0.169 calls nothing else here: no `/models`, no side requests.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from types import TracebackType
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

# A model Codex knows: with an unknown name it warns (an `error` item in the JSONL) and offers
# no `apply_patch` tool.
MODEL = "gpt-5.5"
PROVIDER = "scripted"
API_KEY_ENV = "SCRIPTED_OPENAI_API_KEY"
CACHED_TOKENS = 32  # reported as `input_tokens_details.cached_tokens` on every response

# Input items the model produced (a run of them is one answer), and the tools' results.
MODEL_ITEMS = {"function_call", "custom_tool_call", "reasoning", "local_shell_call"}
TOOL_OUTPUTS = {"function_call_output", "custom_tool_call_output"}
ROLE_START = "You are the "

# OpenAI's error `type`/`code` per status, so the CLI classifies errors as it would live. Codex
# words some itself: any 500 becomes "We're currently experiencing high demand...", a 503
# `server_is_overloaded` "Selected model is at capacity..." (not retried), a 429
# `insufficient_quota` "Quota exceeded. Check your plan and billing details." (not retried).
ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "server_error"),
    503: ("server_error", "server_is_overloaded"),
}


def _text_of(item: dict[str, Any]) -> str:
    """The text of a message or tool output (a string, or a list of content parts)."""
    content = item.get("content", item.get("output", ""))
    if isinstance(content, str):
        return content
    parts = [part.get("text", "") for part in content if isinstance(part, dict)]
    return "".join(part for part in parts if isinstance(part, str))


def _is_model_item(item: dict[str, Any]) -> bool:
    if item.get("type") == "message":
        return item.get("role") == "assistant"
    return item.get("type") in MODEL_ITEMS


def exchange_of(body: dict[str, Any], headers: dict[str, str]) -> Exchange:
    """The `Exchange` a request stands for, as a script sees it.

    Codex puts its own user messages (`<environment_context>`, AGENTS.md instructions) before
    the prompt it read on stdin, so the prompt is the first user message that starts like the
    orchestrator's prompts, else the last user message before the model first answered.
    """
    items = [item for item in body.get("input", []) if isinstance(item, dict)]
    users = [_text_of(item) for item in items if item.get("role") == "user"]
    ours = [text for text in users if text.lstrip().startswith(ROLE_START)]
    first_answer = next((i for i, item in enumerate(items) if _is_model_item(item)), len(items))
    before = [_text_of(it) for it in items[:first_answer] if it.get("role") == "user"]
    prompt = ours[0] if ours else (before or users or [""])[-1]
    answers, last_answer, previous = 0, -1, False
    for index, item in enumerate(items):  # an answer is a run of items (reasoning, calls...)
        model_item = _is_model_item(item)
        answers += model_item and not previous
        last_answer = index if model_item else last_answer
        previous = model_item
    results = tuple(
        _text_of(item) for item in items[last_answer + 1 :] if item.get("type") in TOOL_OUTPUTS
    )
    try:  # Codex names the kind of each request ("turn"; compaction and the like are not)
        kind = json.loads(headers.get("x-codex-turn-metadata", "{}")).get("request_kind", "turn")
    except (ValueError, AttributeError):
        kind = "turn"
    model = str(body.get("model", ""))
    return Exchange(prompt, answers, results, model, main=kind == "turn")


def output_item(reply: Reply, call_id: str) -> dict[str, Any]:
    """The output item Codex executes for a reply (`Text`: a message; others: a tool call).

    An `Edit` is a patch of whole lines: Codex's `apply_patch` finds `old` as lines of the
    file, so `old` must be one or more whole lines (not part of one, as Claude Code allows).
    A `Write` is `printf` through the shell, so it needs no trailing newline in `content`.
    """
    if isinstance(reply, Text):
        content = [{"type": "output_text", "text": reply.text, "annotations": []}]
        return {"type": "message", "id": f"msg_{call_id}", "role": "assistant", "content": content}
    if isinstance(reply, Edit):
        patch = "\n".join(
            ["*** Begin Patch", f"*** Update File: {reply.path}", "@@"]
            + [f"-{line}" for line in reply.old.split("\n")]
            + [f"+{line}" for line in reply.new.split("\n")]
            + ["*** End Patch", ""]
        )
        call = {"type": "custom_tool_call", "name": "apply_patch", "input": patch}
        return {**call, "id": f"ctc_{call_id}", "call_id": call_id}
    if isinstance(reply, Write):
        folder = shlex.quote(str(Path(reply.path).parent))
        command = f"mkdir -p {folder} && printf '%s' {shlex.quote(reply.content)}"
        command += f" > {shlex.quote(reply.path)}"
    elif isinstance(reply, Shell):
        command = reply.command
    else:
        raise TypeError(f"no output item for {reply!r}")
    arguments = json.dumps({"cmd": command, "yield_time_ms": 30000})
    call = {"type": "function_call", "name": "exec_command", "arguments": arguments}
    return {**call, "id": f"fc_{call_id}", "call_id": call_id}


class ResponsesServer:
    """`POST /v1/responses` answered by a `Script`; a context manager around a daemon thread."""

    def __init__(self, script: Script, *, capture_dir: Path | None = None) -> None:
        self.script = script
        self.capture_dir = capture_dir  # every request's path, headers and body, as JSON
        self.served = Served()
        self.errors: list[BaseException] = []  # raised by the script; re-raised on exit
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = count(1)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """What the provider's `base_url` is set to; Codex appends `/responses`."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ResponsesServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if kind is None and self.errors:
            raise self.errors[0]

    def stop(self) -> None:
        """Stop quickly: wake stalled replies, then close the listening socket."""
        self._stopping.set()
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()

    def codex_home(
        self, path: Path, *, retries: int = 1, idle_timeout_ms: int = 300_000
    ) -> dict[str, str]:
        """Write a CODEX_HOME whose config points Codex here; return the env vars to run it with.

        `retries` bounds Codex's own retries (of failed requests and of broken streams), so
        an `ApiError` surfaces in seconds; `idle_timeout_ms` is how long Codex waits on a
        silent stream (a `Stall`) before it gives up on it. Update checks and analytics are
        off, so the CLI talks to nothing but this server.
        """
        path.mkdir(parents=True, exist_ok=True)
        config = f"""\
model = "{MODEL}"
model_provider = "{PROVIDER}"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.{PROVIDER}]
name = "Scripted model"
base_url = "{self.base_url}"
wire_api = "responses"
env_key = "{API_KEY_ENV}"
request_max_retries = {retries}
stream_max_retries = {retries}
stream_idle_timeout_ms = {idle_timeout_ms}
"""
        (path / "config.toml").write_text(config)
        return {"CODEX_HOME": str(path), API_KEY_ENV: "sk-scripted"}

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        """Record the exchange and ask the script for the reply."""
        exchange = exchange_of(body, headers)
        with self._lock:
            self.served.exchanges.append(exchange)
        try:
            return self.script(exchange)
        except Exception as error:  # the test sees it on exit; the CLI sees a 500
            self.errors.append(error)
            return ApiError(500, f"script failed: {error!r}")

    def count_usage(self, body_size: int, reply: Reply) -> dict[str, Any]:
        """Deterministic usage for one response, added to `served` (as the CLI should)."""
        tokens_in = 100 + body_size // 50
        tokens_out = 10 + len(json.dumps(asdict(reply))) // 20
        with self._lock:
            self.served.tokens_in += tokens_in
            self.served.tokens_out += tokens_out
            self.served.cache_read_tokens += CACHED_TOKENS
        return {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": CACHED_TOKENS, "cache_write_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }

    def next_id(self) -> str:
        """Ids unique in this server (responses, items, call ids, capture files)."""
        return f"{next(self._ids):04d}"

    def stall(self, seconds: float) -> None:
        """Say nothing for `seconds`, or until `stop()`: a stalled test must not hang teardown."""
        self._stopping.wait(seconds)


def _handler(server: ResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read `served`, not the server's access log."""

        def handle(self) -> None:
            """A CLI killed mid-stream is a normal end of a test, not a server error."""
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def capture(self, body: object) -> None:
            if server.capture_dir is not None:
                server.capture_dir.mkdir(parents=True, exist_ok=True)
                record = {"path": self.path, "headers": dict(self.headers), "body": body}
                name = f"{server.next_id()}-{self.command}.json"
                (server.capture_dir / name).write_text(json.dumps(record, indent=1))

        def send_json(self, status: int, payload: object, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in {**headers, "Content-Type": "application/json"}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            """Nothing but `/responses` exists here: the CLI copes with a 404 elsewhere."""
            self.capture(None)
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}}, {})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw or b"{}")
            self.capture(body)
            if not self.path.rstrip("/").endswith("/responses"):
                return self.do_GET()
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = server.answer(body, headers)
            if isinstance(reply, ApiError):
                return self.send_error_reply(reply)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            response_id = f"resp_{server.next_id()}"
            self.event("response.created", response={"id": response_id, "status": "in_progress"})
            if isinstance(reply, Stall):  # then the stream ends unfinished: Codex retries it
                server.stall(reply.seconds)
                return None
            item = output_item(reply, server.next_id())
            added = {**item, "content": []} if isinstance(reply, Text) else item
            self.event("response.output_item.added", output_index=0, item=added)
            if isinstance(reply, Text):
                delta = {"item_id": item["id"], "content_index": 0, "delta": reply.text}
                self.event("response.output_text.delta", output_index=0, **delta)
            self.event("response.output_item.done", output_index=0, item=item)
            usage = server.count_usage(len(raw), reply)
            response = {"id": response_id, "output": [item], "usage": usage}
            self.event("response.completed", response={**response, "status": "completed"})
            return None

        def send_error_reply(self, reply: ApiError) -> None:
            """OpenAI's error body; a 429 whose message speaks of quota is `insufficient_quota`."""
            kind, code = ERROR_KINDS.get(reply.status, ("server_error", "server_error"))
            if reply.status == 429 and "quota" in reply.message.lower():
                kind = code = "insufficient_quota"
            error = {"message": reply.message, "type": kind, "code": code, "param": None}
            headers = {"retry-after": "1"} if reply.status == 429 else {}
            self.send_json(reply.status, {"error": error}, headers)

        def event(self, kind: str, **fields: Any) -> None:
            data = json.dumps({"type": kind, **fields})
            self.wfile.write(f"event: {kind}\ndata: {data}\n\n".encode())
            self.wfile.flush()

    return Handler
