"""The API token in the OpenAPI schema. The check itself is made by `api.guard`, before the
body is read; this only declares, on each write, that it needs `Authorization: Bearer`."""

from __future__ import annotations

from fastapi import Depends
from fastapi.security import HTTPBearer

bearer = HTTPBearer(
    auto_error=False,  # the guard already refused a request without the token
    description="ORCH_API_TOKEN, or the token `orch serve` generated into $ORCH_HOME/api-token",
)
Writer = Depends(bearer)
