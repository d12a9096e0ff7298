"""proc_group: run one job's process tree, bounded in time and memory, and leave nothing behind.

Every child runs from an argv list (never a shell) as the leader of a new session and process
group, with stdin closed or fed a prompt and closed, and with cwd and env given explicitly.
Its output streams to a log file; memory holds only a bounded head and tail. On timeout or
cancel the whole tree is killed: SIGTERM to the group, a grace period, SIGKILL, and a sweep
for descendants that left the group (see `sweep.py`).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.errors import SpawnFailed
from orchestrator.proc.sweep import MARKER_VAR, kill_tree
from orchestrator.redact import StreamRedactor

HEAD_BYTES = 16 * 1024
TAIL_BYTES = 64 * 1024
# The log on disk is bounded too: past this, only the tail is kept (appended at the end).
LOG_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class CancelToken:
    """Set from any thread to stop a running group at once (a pipe wakes the waiter)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._closed = False

    def cancel(self) -> None:
        """Ask the group to stop; idempotent, and harmless after `close`."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            if not self._closed:
                os.write(self._write, b"x")

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking at once on a cancel; True if cancelled."""
        return self._event.wait(timeout)

    def fileno(self) -> int:
        """Readable once cancelled: lets `select` wait for the child and the cancel together."""
        return self._read

    def close(self) -> None:
        """Release the pipe (a closed descriptor number may be reused: never write after)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)


@dataclass(frozen=True)
class Started:
    """Who to kill if we die: recorded in the job row before the child does any work."""

    pid: int
    pgid: int
    create_time: float
    marker: str


@dataclass(frozen=True)
class ProcResult:
    """What a process group did."""

    argv: tuple[str, ...]
    exit_code: int | None  # None when killed by a signal
    signal: int | None
    timed_out: bool
    cancelled: bool
    duration_s: float
    log_path: Path
    head: str
    tail: str
    output_bytes: int

    @property
    def ok(self) -> bool:
        """Exited 0 on its own."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    @property
    def output(self) -> str:
        """Head and tail joined; the whole output when it was small."""
        if self.output_bytes <= HEAD_BYTES + TAIL_BYTES:
            return self.head + self.tail
        skipped = f"[... {self.output_bytes} bytes in all; see {self.log_path} ...]"
        return f"{self.head}\n{skipped}\n{self.tail}"


class _Capture:
    """Drains the child's output into the log file, keeping a bounded head and tail in memory."""

    def __init__(self, stream: object, log_path: Path, secrets: Sequence[str] = ()) -> None:
        self._stream = stream
        self._log = log_path.open("wb")
        # Masked before anything is kept or written: no secret is ever stored on disk.
        self._redactor = StreamRedactor(secrets)
        self.head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.total = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="proc-capture", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        read = self._stream.read1  # type: ignore[attr-defined]
        try:
            while chunk := read(_CHUNK):
                self._store(self._redactor.feed(chunk))
            self._store(self._redactor.flush())
        finally:
            # Closed by its reader: a close from another thread while a read is blocked (a
            # descendant we could not find still holds the pipe) would wait for that read.
            with contextlib.suppress(OSError):
                self._stream.close()  # type: ignore[attr-defined]

    def _store(self, chunk: bytes) -> None:
        self._keep(chunk)
        with self._lock:
            if self.total <= LOG_MAX_BYTES and not self._log.closed:
                self._log.write(chunk)
                self._log.flush()  # as it comes: a person follows a running job's log
        self.total += len(chunk)

    def _keep(self, chunk: bytes) -> None:
        room = HEAD_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
                self._tail_size -= len(self._tail.popleft())

    @property
    def tail(self) -> bytes:
        data = b"".join(self._tail)
        return data[-TAIL_BYTES:]

    def finish(self, timeout: float) -> None:
        self._thread.join(timeout)
        with self._lock:
            if self.total > LOG_MAX_BYTES:
                self._log.write(
                    f"\n[log truncated at {LOG_MAX_BYTES} bytes; the tail follows]\n".encode()
                )
                self._log.write(self.tail)
            self._log.close()


def _feed(stdin: object, data: bytes) -> None:
    # A child that does not read its stdin is its own business: a broken pipe is not ours.
    with contextlib.suppress(OSError):
        stdin.write(data)  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):
        stdin.close()  # type: ignore[attr-defined]


def run_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout: float,
    grace: float = 5.0,
    stdin_data: bytes | None = None,
    cancel: CancelToken | None = None,
    on_start: Callable[[Started], None] | None = None,
    marker: str | None = None,
    secrets: Sequence[str] = (),
) -> ProcResult:
    """Run `argv` as its own process group until it exits, times out or is cancelled.
    Its output is kept with every one of `secrets` masked, in its log and in the result.

    Raises SpawnFailed when the program cannot be started at all (not found, not executable,
    no such cwd). Anything it leaves running when it ends is killed too. `marker` tags every
    descendant's environment (a fresh one by default): a later process that knows it can find
    the tree even if we die before recording a pid.
    """
    marker = marker or uuid.uuid4().hex
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**env, MARKER_VAR: marker},
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise SpawnFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc

    capture = _Capture(process.stdout, log_path, secrets)
    feeder = None
    if stdin_data is not None:
        feeder = threading.Thread(target=_feed, args=(process.stdin, stdin_data), daemon=True)
        feeder.start()
    try:
        create_time = psutil.Process(process.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    if on_start is not None:
        on_start(Started(process.pid, process.pid, create_time, marker))

    timed_out = cancelled = False
    try:
        ended = _wait(process, start + timeout, cancel)
        if not ended:
            timed_out = not (cancel is not None and cancel.cancelled)
            cancelled = not timed_out
    finally:
        # Also on a normal exit: whatever the job left running in the background goes too.
        kill_tree(process.pid, marker, grace=grace, leader=process)
        process.wait()
    capture.finish(timeout=5.0)
    if feeder is not None:
        feeder.join(timeout=1.0)
    code = process.returncode
    return ProcResult(
        argv=tuple(argv),
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_s=time.monotonic() - start,
        log_path=log_path,
        head=bytes(capture.head).decode("utf-8", "replace"),
        tail=capture.tail.decode("utf-8", "replace") if capture.total > HEAD_BYTES else "",
        output_bytes=capture.total,
    )


def _wait(process: subprocess.Popen[bytes], deadline: float, cancel: CancelToken | None) -> bool:
    """Block until the child exits (True), or the deadline or a cancel comes first (False)."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while process.poll() is None:
            if cancel is not None and cancel.cancelled:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if pidfd is None:  # no pidfd (old kernel): a short poll instead of a wake-up
                time.sleep(min(remaining, 0.01))
                continue
            watched = [pidfd] + ([cancel.fileno()] if cancel is not None else [])
            select.select(watched, [], [], remaining)
        return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def terminate_group(
    pgid: int | None, create_time: float | None, marker: str | None, grace: float
) -> bool:
    """Kill a tree some earlier process started (crash recovery, cancel from another process).

    The group is signalled only while its leader is still the process we recorded (same start
    time), so a reused pid is never killed; marked descendants are found either way. Returns
    True when something was killed.
    """
    if pgid is not None:
        try:
            if abs(psutil.Process(pgid).create_time() - (create_time or 0.0)) > 0.01:
                pgid = None  # that pid now belongs to another process
        except psutil.NoSuchProcess:
            pass  # the leader is gone; its group may still have members
        except psutil.Error:
            pgid = None
    return kill_tree(pgid, marker, grace=grace)


def process_alive(pid: int, create_time: float) -> bool:
    """True when `pid` is still the process that started at `create_time`."""
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - create_time) <= 0.01
        return bool(same and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
