"""Queries on alerts: things a person should hear about."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from orchestrator.errors import NotFound
from orchestrator.store.base import StoreBase, utcnow
from orchestrator.store.records import Alert
from orchestrator.store.schema import alerts


class AlertQueries(StoreBase):
    """List and acknowledge alerts (they are raised inside the moves that cause them)."""

    def list_alerts(self, *, open_only: bool = False, task_id: str | None = None) -> list[Alert]:
        """Alerts, newest first."""
        query = select(alerts).order_by(alerts.c.id.desc())
        if open_only:
            query = query.where(alerts.c.acknowledged_at.is_(None))
        if task_id is not None:
            query = query.where(alerts.c.task_id == task_id)
        with self._read() as conn:
            return [Alert.from_row(row) for row in conn.execute(query)]

    def acknowledge_alert(self, alert_id: int) -> Alert:
        """Mark an alert as seen (acknowledging twice keeps the first time)."""
        with self._write() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id, alerts.c.acknowledged_at.is_(None))
                .values(acknowledged_at=utcnow())
            )
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return Alert.from_row(row)

    def undelivered_alerts(self, since: datetime, limit: int = 50) -> list[Alert]:
        """Alerts raised after `since` that have not reached the webhook yet, oldest first."""
        query = (
            select(alerts)
            .where(alerts.c.delivered_at.is_(None), alerts.c.created_at >= since)
            .order_by(alerts.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [Alert.from_row(row) for row in conn.execute(query)]

    def mark_alert_delivered(self, alert_id: int) -> None:
        """The webhook accepted the alert."""
        with self._write() as conn:
            conn.execute(
                update(alerts).where(alerts.c.id == alert_id).values(delivered_at=utcnow())
            )

    @staticmethod
    def _insert_alert(conn: Connection, kind: str, message: str, task_id: str | None) -> Alert:
        row = conn.execute(
            insert(alerts)
            .values(task_id=task_id, kind=kind, message=message, created_at=utcnow())
            .returning(alerts)
        ).one()
        return Alert.from_row(row)
