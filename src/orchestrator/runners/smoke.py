"""The test-runner's optional read-only smoke check of a running orchestrator API.

GET /health, /status and /queue; /queue must carry a well-formed `serial_gate` block. No
connection is a tool error (the service under test is not there); a response that breaks
the contract is a FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

SMOKE_TIMEOUT_S = 10.0
PATHS = ("/health", "/status", "/queue")


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke check saw."""

    ok: bool
    unreachable: bool
    summary: str


def serial_gate_problem(queue: Any) -> str | None:
    """Why a /queue document's `serial_gate` block is malformed, or None when it is fine."""
    if not isinstance(queue, dict) or "serial_gate" not in queue:
        return "/queue has no serial_gate block"
    gates = queue["serial_gate"]
    if not isinstance(gates, dict):
        return "serial_gate is not an object of repos"
    for repo, gate in gates.items():
        if not isinstance(gate, dict) or not {"holder", "waiting"} <= set(gate):
            return f"serial_gate[{repo!r}] lacks holder or waiting"
        if gate["holder"] is not None and not isinstance(gate["holder"], str):
            return f"serial_gate[{repo!r}].holder is not a task id"
        if not isinstance(gate["waiting"], list):
            return f"serial_gate[{repo!r}].waiting is not a list"
    return None


def check(base_url: str) -> SmokeResult:
    """Run the smoke check against `base_url`."""
    problems: list[str] = []
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=SMOKE_TIMEOUT_S) as client:
            for path in PATHS:
                response = client.get(path)
                if not response.is_success:
                    problems.append(f"GET {path} answered {response.status_code}")
                    continue
                if path == "/queue":
                    try:
                        problem = serial_gate_problem(response.json())
                    except ValueError:
                        problem = "/queue did not answer JSON"
                    if problem:
                        problems.append(problem)
    except httpx.TransportError as exc:
        return SmokeResult(False, True, f"cannot reach {base_url}: {exc}")
    if problems:
        return SmokeResult(False, False, "Smoke check FAILED: " + "; ".join(problems) + ".")
    return SmokeResult(True, False, f"Smoke check passed: GET {', '.join(PATHS)} on {base_url}.")
