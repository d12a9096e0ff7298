"""Which host a process runs on, as far as process ids go.

Leases are judged by the database's clock, but two shortcuts use process ids: a worker on
the same host may judge another dead by its pid (without waiting out the lease), and kills
what a dead worker left by its process group and marker. Both are right only where the pids
are the same processes: the same kernel, booted once, and the same PID namespace. The
hostname alone does not say so: containers and cloned machines often share one, and a worker
that took its twin for this host would judge the twin's live worker dead by a pid it cannot
see, and kill the twin's agent by marker.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import cache
from pathlib import Path

import psutil

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = "/proc/self/ns/pid"


@cache
def host_identity() -> str:
    """`hostname~tag`: the tag names this kernel boot and PID namespace (8 hex digits), so
    that two hosts with one hostname are two hosts, and a host is itself until it reboots."""
    try:
        boot = BOOT_ID.read_text().strip()
    except OSError:  # not Linux: the boot time stands in for the boot's id
        boot = f"{psutil.boot_time():.0f}"
    try:
        namespace = str(os.stat(PID_NAMESPACE).st_ino)
    except OSError:
        namespace = ""
    tag = hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:8]
    return f"{socket.gethostname()}~{tag}"
