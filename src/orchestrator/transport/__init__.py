"""The single LLM transport: the only code in orchestrator that starts an agent."""

from orchestrator.transport.call import build_argv, call_agent, cli_version
from orchestrator.transport.types import AgentRequest, AgentResult, ErrorKind, Usage

__all__ = [
    "AgentRequest",
    "AgentResult",
    "ErrorKind",
    "Usage",
    "build_argv",
    "call_agent",
    "cli_version",
]
