"""Waiting for the service's own /health to answer before watching it.

The post-deploy-monitor of a self deploy runs inside the service it watches; the watch
window starts once that service answers (a refusal during start-up is not a failure).
"""

from __future__ import annotations

import time

import httpx

from orchestrator.proc import CancelToken

POLL_S = 0.1


def await_answer(url: str, timeout_s: float, cancel: CancelToken) -> bool | None:
    """True once `url` answers at all (any status), False after `timeout_s` without an
    answer, None when cancelled."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            try:
                client.get(url)
                return True
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                return False
            if cancel.wait(POLL_S):
                return None
