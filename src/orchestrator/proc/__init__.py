"""The process layer: the only code that starts subprocesses."""

from orchestrator.proc.run import CommandResult, run_command

__all__ = ["CommandResult", "run_command"]
