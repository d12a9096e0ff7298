"""The process layer: the only code that starts subprocesses."""

from orchestrator.proc.group import (
    CancelToken,
    ProcResult,
    Started,
    process_alive,
    run_group,
    terminate_group,
)
from orchestrator.proc.host import host_identity
from orchestrator.proc.run import CommandResult, run_command

__all__ = [
    "CancelToken",
    "CommandResult",
    "ProcResult",
    "Started",
    "host_identity",
    "process_alive",
    "run_command",
    "run_group",
    "terminate_group",
]
