"""Fixtures of the acceptance tests that run `orch serve` as a real process."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ORCH_EXE
from tests.serve_support import free_port, wait_for_health

Serve = Callable[..., tuple[subprocess.Popen[str], str]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Factory: start `orch serve` on a free port (with `env` added to the environment) and
    wait for /health; killed if left running."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        with (tmp_path / f"serve-{port}.log").open("w") as log:
            process = subprocess.Popen(
                [ORCH_EXE, "serve", "--port", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **(env or {})},
            )
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"
        wait_for_health(process, base_url)
        return process, base_url

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
