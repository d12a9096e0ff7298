"""LLM governance: where the product calls an LLM, as data, and the rules around it."""

from orchestrator.governance.call_sites import CALL_SITES, CallSite

__all__ = ["CALL_SITES", "CallSite"]
