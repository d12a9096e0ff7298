"""What the tests of a real `orch serve` share: a free port, waiting for it, stopping it,
and the system's Chromium for the browser tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_health(process: subprocess.Popen[str], base_url: str) -> float:
    """Seconds until GET /health answered 200; fails when the server dies or is too slow."""
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        assert process.poll() is None, f"orch serve exited with {process.returncode}"
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no answer from {base_url}/health within {START_TIMEOUT_S} s")


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing, and under CI=true the browser tests must run")
    print(f"skipping: the browser test needs Debian's chromium at {CHROMIUM}")
    pytest.skip(f"the browser test needs {CHROMIUM} (apt-get install chromium)")


def auth_from(orch_home: Path) -> dict[str, str]:
    """The header that carries the token a real `orch serve` generated into `orch_home`."""
    token = (orch_home / "api-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}
