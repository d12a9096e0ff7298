"""post-deploy-monitor: watches the repo's health URL after a deploy.

Polls the URL every ORCH_MONITOR_INTERVAL_S for ORCH_MONITOR_WINDOW_S. Every answer 2xx is
HEALTHY; any failure (an error status, a timeout, no connection) is UNHEALTHY, which fails
the task with an alert. A repo without a health URL is SKIPPED.

The window is the monitor's limit (it has no `_TIMEOUT_S`): no probe starts once the window
is more than one interval behind it, and a probe waits at most PROBE_TIMEOUT_S for each step
(connect, send, read) and never reads the body. So the watch ends at the latest one interval
plus one probe after its window, however slowly the service answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from orchestrator.pipeline.stages import Producer
from orchestrator.proc import CancelToken
from orchestrator.redact import redact
from orchestrator.runners.base import FailureKind, RunnerOutcome, RunnerRequest

PROBE_TIMEOUT_S = 5.0
START_POLL_S = 0.1


def await_answer(url: str, timeout_s: float, cancel: CancelToken) -> bool | None:
    """True once `url` answers at all (any status), False after `timeout_s` without an
    answer, None when cancelled: a self deploy's watch starts once the restarted service
    answers (a refusal during its start-up is not a failure)."""
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
            if cancel.wait(START_POLL_S):
                return None


@dataclass(frozen=True)
class Probe:
    """One health check."""

    at_s: float  # seconds into the window
    status: int | None  # HTTP status, None when there was no answer
    latency_ms: float
    error: str = ""

    @property
    def healthy(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


def probe(client: httpx.Client, url: str, at_s: float) -> Probe:
    """GET the health URL once."""
    started = time.monotonic()
    try:
        # The status is the answer: a body that never ends must not hold the watch.
        with client.stream("GET", url) as response:
            status = response.status_code
    except httpx.HTTPError as exc:
        elapsed = (time.monotonic() - started) * 1000
        return Probe(at_s, None, elapsed, f"{type(exc).__name__}: {exc}")
    return Probe(at_s, status, (time.monotonic() - started) * 1000)


def self_health_url(request: RunnerRequest) -> str | None:
    """For the orchestrator's own repo: the /health of the service this monitor runs in."""
    if not request.repo.is_self:
        return None
    settings = request.settings
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}/health"


class PostDeployMonitor:
    """Watches health after a deploy and writes the monitor report."""

    producer = Producer.POST_DEPLOY_MONITOR

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Poll for the whole window; HEALTHY, UNHEALTHY or SKIPPED (or a tool error)."""
        url = watched_url(request)
        if not url:
            return RunnerOutcome(artifact=render_report("SKIPPED", None, [], 0.0, 0.0))
        # Its own /health: the window starts once the service answers (start-up is not a
        # failure; ORCH_SELF_START_TIMEOUT_S bounds the wait, then the probes judge).
        own = not request.repo.health_url and request.repo.is_self
        timeout = request.settings.self_start_timeout_s
        if own and await_answer(url, timeout, request.cancel) is None:
            return RunnerOutcome(cancelled=True)
        window = request.settings.monitor_window_s
        interval = request.settings.monitor_interval_s
        probes: list[Probe] = []
        # A probe at the start and one every interval up to the end of the window (the small
        # epsilon keeps 0.6 / 0.2 from rounding down to 2).
        count = int(window / interval + 1e-9) + 1
        try:
            # A busy machine answers slowly: the probe waits up to PROBE_TIMEOUT_S however
            # short the interval (the next probe then starts late, never early).
            client = httpx.Client(timeout=PROBE_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            # A broken environment (a proxy or CA bundle setting): the watch cannot run at
            # all, which says nothing about the service.
            return RunnerOutcome.tool_error(
                f"cannot open an HTTP client to watch {url}: {type(exc).__name__}: {exc}"
            )
        started = time.monotonic()
        with client:
            for index in range(count):
                if index and request.cancel.wait(
                    max(0.0, index * interval - (time.monotonic() - started))
                ):
                    return RunnerOutcome(cancelled=True)
                at_s = time.monotonic() - started
                if index and at_s > window + interval:
                    break  # slow answers used up the window: the rest would start too late
                probes.append(probe(client, url, at_s))
        healthy = all(p.healthy for p in probes)
        note = ""
        if len(probes) < count:
            note = (
                f"{count - len(probes)} of {count} probes did not start: slow answers took the "
                "watch past the end of its window."
            )
        text = render_report(
            "HEALTHY" if healthy else "UNHEALTHY", url, probes, window, interval, note
        )
        return RunnerOutcome(artifact=redact(text, request.secrets))

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The UNHEALTHY report once the watch could not run `attempts` times."""
        return render_report(
            "UNHEALTHY",
            watched_url(request),
            [],
            request.settings.monitor_window_s,
            request.settings.monitor_interval_s,
            note=f"The watch could not run in {attempts} attempts; last reason: {reason}.",
            kind=FailureKind.INFRA,
        )


def watched_url(request: RunnerRequest) -> str | None:
    """The repo's health URL; for the orchestrator's own repo, its own /health."""
    return request.repo.health_url or self_health_url(request)


def render_report(
    status: str,
    url: str | None,
    probes: list[Probe],
    window_s: float,
    interval_s: float,
    note: str = "",
    kind: FailureKind | None = None,
) -> str:
    """`17-monitor-report.md`: the verdict key, then every probe."""
    failing = [p for p in probes if not p.healthy]
    if kind is None:
        kind = FailureKind.UNHEALTHY if status == "UNHEALTHY" else FailureKind.NONE
    lines = [
        "# Post-deploy monitor report",
        "",
        f"monitor_status: {status}",
        f"failure_kind: {kind}",
        "producer: post-deploy-monitor",
        "",
    ]
    if kind is FailureKind.INFRA:
        lines.append(f"Could not watch {f'`{url}`' if url else 'the service'}: no probe ran.")
    elif url is None:
        lines.append("The repo has no health URL (orch repo set NAME --health-url URL): skipped.")
    else:
        lines.append(
            f"Watched `{url}` every {interval_s:g}s for {window_s:g}s: {len(probes)} probes, "
            f"{len(failing)} failed."
        )
    if note:
        lines += ["", note]
    if probes:
        lines += ["", "| at | status | latency | error |", "|---|---|---|---|"]
        for p in probes:
            shown = str(p.status) if p.status is not None else "no answer"
            error = p.error.replace("|", "/")[:120]
            lines.append(f"| {p.at_s:.1f}s | {shown} | {p.latency_ms:.0f} ms | {error} |")
    return "\n".join(lines) + "\n"
