"""The served schema is the API's contract: `schemathesis run --checks all` (the real CLI,
as docs/api.md gives it) against a real `orch serve` finds no failure. Every status, body and
content type it answers is documented, and a request the schema allows is never refused for
something the schema could have said."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ORCH_EXE
from tests.helpers import add_task
from tests.serve_support import auth_from, free_port, stop, wait_for_health

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
ROOT = Path(__file__).resolve().parents[2]


def test_schemathesis_checks_all_find_no_failure(
    orch_exe: Callable[..., subprocess.CompletedProcess[str]],
    make_repo: Callable[..., Path],
    orch_home: Path,
    tmp_path: Path,
) -> None:
    added = orch_exe("repo", "add", "app", str(make_repo("app")))
    assert added.returncode == 0, added.stderr
    add_task(orch_exe, "app", "A task")
    port = free_port()
    # In a folder of its own: a generated relative path never names a working copy.
    workdir = tmp_path / "serve-cwd"
    workdir.mkdir()
    server = subprocess.Popen(
        [ORCH_EXE, "serve", "--no-worker", "--port", str(port)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(server, base_url)
        [(name, value)] = auth_from(orch_home).items()
        run = subprocess.run(
            [
                SCHEMATHESIS,
                "--config-file",
                str(ROOT / "schemathesis.toml"),
                "run",
                f"{base_url}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"{name}: {value}",
                "--max-examples",
                "25",
                "--seed",
                "20261204",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
    finally:
        assert stop(server) == 0
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1]
