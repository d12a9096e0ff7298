"""Mutating endpoints require `Authorization: Bearer $ORCH_API_TOKEN` when a token is set."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from orchestrator.api.state import ApiState, get_state


def require_token(request: Request, state: Annotated[ApiState, Depends(get_state)]) -> None:
    """Refuse a write without the right bearer token (compared in constant time)."""
    token = state.settings.token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="this endpoint needs Authorization: Bearer <ORCH_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


Writer = Depends(require_token)
