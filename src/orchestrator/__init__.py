"""orchestrator: a self-hosting delivery pipeline for coding agents."""

__version__ = "0.1.0"
