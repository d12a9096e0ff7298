"""The scheduler: one event-driven loop per worker that claims jobs and runs them."""

from orchestrator.scheduler.worker import Worker

__all__ = ["Worker"]
