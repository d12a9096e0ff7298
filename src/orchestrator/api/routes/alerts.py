"""Alerts: list and acknowledge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from orchestrator.api.security import Writer
from orchestrator.api.state import State
from orchestrator.documents import alert_document

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", summary="List alerts, newest first")
def list_alerts(
    state: State, open_only: Annotated[bool, Query(alias="open")] = False
) -> list[dict[str, Any]]:
    """Alerts; `?open=true` for the unacknowledged ones."""
    return [alert_document(a) for a in state.store.list_alerts(open_only=open_only)]


@router.post("/{alert_id}/ack", dependencies=[Writer], summary="Acknowledge an alert")
def acknowledge(alert_id: Annotated[int, Path(ge=1, le=2**31 - 1)], state: State) -> dict[str, Any]:
    """Mark the alert as seen."""
    return alert_document(state.store.acknowledge_alert(alert_id))
