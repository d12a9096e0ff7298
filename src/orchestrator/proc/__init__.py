"""The process layer: the only code that starts subprocesses."""

from orchestrator.proc.group import (
    CancelToken,
    ProcResult,
    Started,
    process_alive,
    run_group,
    terminate_group,
)
from orchestrator.proc.run import CommandResult, run_command

__all__ = [
    "CancelToken",
    "CommandResult",
    "ProcResult",
    "Started",
    "process_alive",
    "run_command",
    "run_group",
    "terminate_group",
]
