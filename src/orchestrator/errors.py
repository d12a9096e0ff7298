"""The one exception root of orchestrator, and its tree.

    OrchError
     ├── ConfigError        a setting is missing or malformed (exit 2 at start)
     ├── InputError         a user's input is wrong (exit 2, HTTP 4xx)
     │    ├── InvalidName   a task id, repo name or artifact name of the wrong form
     │    ├── NotFound      no such repo, task or artifact
     │    └── Conflict      the name is taken, or the object is not in a state that allows it
     ├── StoreError         the database failed; the driver's error is chained
     │    └── StaleState    a conditional update found the row already moved by someone else
     ├── GitError           a git command failed; its stderr is in the message
     └── SpawnFailed        a program could not be started (not found, not executable)

Modules raise these; the edges (CLI, API) translate them to exit codes and status codes.
"""

from __future__ import annotations


class OrchError(Exception):
    """Root of every error orchestrator raises on purpose."""


class ConfigError(OrchError):
    """A setting is missing or malformed; the message names the key."""


class InputError(OrchError):
    """Input from a user that cannot be accepted."""


class InvalidName(InputError, ValueError):
    """A task id, repo name or artifact name that is not of its documented form."""


class NotFound(InputError):
    """The named repo, task or artifact does not exist."""


class Conflict(InputError):
    """The request clashes with what exists (a taken name, a task in the wrong state)."""


class StoreError(OrchError):
    """The database could not do what was asked."""


class StaleState(StoreError):
    """A conditional update matched nothing: another writer changed the row first."""


class GitError(OrchError):
    """A git command failed."""


class SpawnFailed(OrchError):
    """A program could not be started at all."""
