"""The environment of every child we start (agents and suites): ours, minus our secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping

from orchestrator.proc.sweep import MARKER_VAR
from orchestrator.settings import SECRET_FIELDS, env_key

# Never passed on: the orchestrator's own secrets, and variables that would make a nested
# Claude Code refuse to start or think it runs inside another session.
DENYLIST = frozenset({env_key(field) for field in SECRET_FIELDS} | {"CLAUDECODE", MARKER_VAR})


def child_env(
    variables: Mapping[str, str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`base` (default: our environment) minus the denylist, plus the task `variables`."""
    source = os.environ if base is None else base
    env = {key: value for key, value in source.items() if key not in DENYLIST}
    env.update(variables)
    return env
