"""Alerts go to ORCH_ALERT_WEBHOOK_URL as JSON: delivered at least once, never fatal.

Alerts are rows first (every raise commits with the change that caused it); a notifier
thread in the worker posts the undelivered ones and marks them. A webhook that fails is
logged and retried later with a growing pause; the pipeline never waits for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import httpx

from orchestrator.documents import alert_document
from orchestrator.store import Store
from orchestrator.store.base import utcnow

log = logging.getLogger(__name__)

POST_TIMEOUT_S = 5.0
IDLE_POLL_S = 2.0
MAX_PAUSE_S = 300.0
# Alerts older than this when a worker starts are not posted: a newly configured webhook is
# not flooded with history.
LOOKBACK = timedelta(hours=24)


class AlertNotifier:
    """Posts undelivered alerts to the webhook from a background thread."""

    def __init__(self, store: Store, url: str) -> None:
        self.store = store
        self.url = url
        self.wake = threading.Event()
        self._since = utcnow() - LOOKBACK

    def deliver_pending(self, client: httpx.Client) -> bool:
        """Post what is pending; False when the webhook failed (try again later)."""
        for alert in self.store.undelivered_alerts(self._since):
            try:
                response = client.post(
                    self.url, json={"source": "orchestrator", **alert_document(alert)}
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("alert %s not delivered to the webhook: %s", alert.id, exc)
                return False
            self.store.mark_alert_delivered(alert.id)
        return True

    def run(self, stopping: threading.Event) -> None:
        """Deliver until `stopping` is set; wake early when `wake` is set."""
        pause = IDLE_POLL_S
        with httpx.Client(timeout=POST_TIMEOUT_S) as client:
            while not stopping.is_set():
                try:
                    delivered = self.deliver_pending(client)
                except Exception:
                    log.exception("alert delivery failed")
                    delivered = False
                pause = IDLE_POLL_S if delivered else min(MAX_PAUSE_S, pause * 2)
                self.wake.wait(pause)
                self.wake.clear()
            try:  # a last try for what the final jobs raised
                self.deliver_pending(client)
            except Exception:
                log.exception("alert delivery failed")
