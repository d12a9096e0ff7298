"""Finding and killing a job's whole process tree, including descendants that left its group.

A child that calls setsid() leaves its process group, and an orphan is re-parented away from
its tree, so neither the group nor the parent chain finds everything. Each job's environment
carries a unique marker that every descendant inherits; the sweep finds processes by their
group or by that marker (the approach Jenkins' ProcessTreeKiller takes with BUILD_ID).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import psutil

MARKER_VAR = "ORCH_PROC_MARKER"
_PROC_ENVIRON = os.path.isdir("/proc/self")  # Linux: environments are read from /proc
_ROUNDS = 5  # kill passes: catches processes forked while the previous pass was signalling


def _alive(process: psutil.Process) -> bool:
    # A zombie is dead for our purposes: it runs nothing, and PID 1 in a container may never
    # reap it.
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def find_tree(
    pgid: int | None, marker: str | None, exclude: int | None = None
) -> list[psutil.Process]:
    """Live processes in group `pgid` or carrying `marker` in their environment."""
    skip = {os.getpid(), exclude}
    found: list[psutil.Process] = []
    for pid in psutil.pids():
        if pid in skip:
            continue
        try:
            in_group = pgid is not None and os.getpgid(pid) == pgid
            mine = in_group or bool(marker and _carries(pid, marker))
            process = psutil.Process(pid) if mine else None
        except (ProcessLookupError, psutil.Error):
            continue
        if process is not None and _alive(process):
            found.append(process)
    return found


def _carries(pid: int, marker: str) -> bool:
    # This runs for every process on the machine after every job: on Linux the environment
    # is read directly, an order of magnitude cheaper than through psutil's Process objects.
    if _PROC_ENVIRON:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                block = environ.read()
        except OSError:  # gone, or not ours to read (psutil could not read it either)
            return False
        return f"\0{MARKER_VAR}={marker}\0".encode() in b"\0" + block
    return bool(psutil.Process(pid).environ().get(MARKER_VAR) == marker)


def _signal_all(pgid: int | None, processes: list[psutil.Process], signum: int) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signum)


def _wait_gone(
    processes: list[psutil.Process], leader: subprocess.Popen[bytes] | None, until: float
) -> list[psutil.Process]:
    while True:
        leader_alive = leader is not None and leader.poll() is None
        alive = [p for p in processes if _alive(p)]
        if (not alive and not leader_alive) or time.monotonic() >= until:
            return alive
        time.sleep(0.01)


def kill_tree(
    pgid: int | None,
    marker: str | None,
    *,
    grace: float,
    leader: subprocess.Popen[bytes] | None = None,
) -> bool:
    """SIGTERM the tree, wait up to `grace`, then SIGKILL what is left; True if any was alive.

    `leader` is our own child, reaped through Popen so its exit status is kept.
    """
    exclude = leader.pid if leader is not None else None
    tree = find_tree(pgid, marker, exclude)
    leader_alive = leader is not None and leader.poll() is None
    if not tree and not leader_alive:
        return False
    _signal_all(pgid, tree, signal.SIGTERM)
    survivors = _wait_gone(tree, leader, time.monotonic() + grace)
    for _ in range(_ROUNDS):
        leader_alive = leader is not None and leader.poll() is None
        if not survivors and not leader_alive:
            break
        _signal_all(pgid, survivors, signal.SIGKILL)
        _wait_gone(survivors, leader, time.monotonic() + 1.0)
        survivors = find_tree(pgid, marker, exclude)
    return True
