"""Job logs as a person reads them: the attempt's files, and following them as they grow.

A job attempt writes its log under `$ORCH_HOME/logs/<task>/` as `<job>-<attempt>-<producer>.log`
while it runs (the process layer writes each chunk as it comes, masked); its path is recorded
on the job when it ends. So a running job's log is found by its name, and followed by reading
what was added since, until the job has ended and every byte is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from orchestrator.store import Job
from orchestrator.store.records import LIVE_JOB_STATUSES
from orchestrator.workspace import layout

FOLLOW_POLL_S = 0.2


def attempt_logs(home: Path, job: Job) -> list[Path]:
    """The log files of the job's current attempt, oldest first (the summarizer's before the
    developer's, say); only files inside the task's own log folder."""
    folder = layout.log_dir(home, job.task_id)
    return sorted(
        folder.glob(f"{job.id}-{job.attempt}-*.log"), key=lambda p: (p.stat().st_mtime, p.name)
    )


def last_bytes(paths: list[Path], limit: int) -> bytes:
    """The last `limit` bytes of the files joined in order, reading no more than that."""
    parts: list[bytes] = []
    left = limit
    for path in reversed(paths):
        if left <= 0:
            break
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(0, size - left))
            parts.append(log.read())
        left -= len(parts[-1])
    return b"".join(reversed(parts))


def pick_job(jobs: list[Job], stage: str | None = None, round_: int | None = None) -> Job | None:
    """The newest of a task's jobs that started (or are about to), at that stage and round."""
    chosen = [
        j
        for j in jobs
        if (stage is None or j.stage == stage) and (round_ is None or j.round == round_)
    ]
    return chosen[-1] if chosen else None


class LogTail:
    """What a job's attempt logs gained since the last read (several files, in order)."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._offsets: dict[Path, int] = {}

    def read(self, job: Job) -> bytes:
        """The bytes written since the last read, of every log file of the job's attempt."""
        parts = []
        for path in attempt_logs(self._home, job):
            with path.open("rb") as log:
                log.seek(self._offsets.get(path, 0))
                data = log.read()
            self._offsets[path] = self._offsets.get(path, 0) + len(data)
            parts.append(data)
        return b"".join(parts)


def ended(job: Job) -> bool:
    """The job is over: no more output will come."""
    return job.status not in LIVE_JOB_STATUSES


def follow(
    home: Path, job_id: int, reload: Callable[[int], Job], poll_s: float = FOLLOW_POLL_S
) -> Iterator[bytes]:
    """Every byte of the job's attempt logs, as they are written, until the job has ended and
    all is read. `reload` gives the job as it stands now."""
    tail = LogTail(home)
    while True:
        job = reload(job_id)
        over = ended(job)  # read before the files: nothing written after it is missed
        if data := tail.read(job):
            yield data
        if over:
            return
        time.sleep(poll_s)
