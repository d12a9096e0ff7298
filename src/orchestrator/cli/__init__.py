"""The `orch` command line: a thin edge that parses, calls, and translates errors."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.app import orch
from orchestrator.errors import ConfigError, GitError, InputError, OrchError

# Exit 2 is "you asked for something wrong": usage, bad input, bad configuration.
EXIT_INPUT = 2
EXIT_FAILURE = 1


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run `orch`; every failure ends as one `error: ...` line on stderr and an exit code."""
    try:
        code = orch.main(args=argv, prog_name="orch", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", EXIT_INPUT)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        _fail("aborted", 130)
    except (InputError, ConfigError, GitError) as exc:
        _fail(str(exc), EXIT_INPUT)
    except OrchError as exc:
        _fail(str(exc), EXIT_FAILURE)
    except BrokenPipeError:
        sys.exit(EXIT_FAILURE)
    except OSError as exc:  # a file or folder we were pointed at: say which, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
