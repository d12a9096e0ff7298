"""The HTTP API and the dashboard (FastAPI), served by `orch serve`."""

from orchestrator.api.app import create_app

__all__ = ["create_app"]
