"""`orch repo`: register repositories and change how they are tested and deployed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import console, emit_json, notice
from orchestrator.documents import pipeline_document, repo_document
from orchestrator.pipeline.names import check_repo_name
from orchestrator.registry import (
    RepoOptions,
    change_repo,
    register_repo,
    repo_pipeline,
    what_is_missing,
)
from orchestrator.store import Repo


def _repo_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--default-branch",
            help="Branch tasks start from and merge into [default: the repo's current branch].",
        ),
        click.option("--test-target", help="What pytest runs [default: tests]."),
        click.option("--test-command", help="Test command [default: python -m pytest TARGET]."),
        click.option("--staging-command", help="Staging suite, run in the task's worktree."),
        click.option("--deploy-command", help="Run after the merge into the default branch."),
        click.option("--health-url", help="URL the post-deploy monitor polls."),
        click.option(
            "--junit-path",
            help="A JUnit XML report the test command writes (a path in the repo): the test "
            "report's counts and failing tests come from it.",
        ),
        click.option(
            "--setup-command",
            help="Run once in each new worktree before its first "
            "job (e.g. 'bash scripts/setup.sh').",
        ),
        click.option(
            "--skip-stages",
            metavar="S1,S2",
            help="Optional stages to switch off "
            "(design, review, deploy-staging, deploy, post-deploy).",
        ),
        click.option(
            "--self/--no-self",
            "is_self",
            default=None,
            help="This is the checkout the running orchestrator is started from.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the repo as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _print_repo(repo: Repo, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(repo_document(repo))
        return
    notice(
        f"{verb} repo [bold]{repo.name}[/] at {repo.path} (default branch {repo.default_branch})"
    )
    for line in what_is_missing(repo):
        notice(f"  {line}")
    console.print(repo.name)


@click.group()
def repo() -> None:
    """Register git repositories and their commands."""


@repo.command("add")
@click.argument("name")
@click.argument("path")
@_repo_options
@pass_app
def repo_add(app: AppContext, /, name: str, path: str, as_json: bool, **options: Any) -> None:
    """Register PATH as NAME: a git working copy (used in place, on this machine), or a git
    URL or bare repository (every worker works in its own clone, for several machines)."""
    added = register_repo(app.store, name, path, RepoOptions(**options))
    _print_repo(added, as_json, "added")


@repo.command("set")
@click.argument("name")
@_repo_options
@pass_app
def repo_set(app: AppContext, /, name: str, as_json: bool, **options: Any) -> None:
    """Change a repo's settings (an empty value clears a command or URL)."""
    changed = change_repo(app.store, name, RepoOptions(**options))
    _print_repo(changed, as_json, "changed")


@repo.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_app
def repo_list(app: AppContext, as_json: bool) -> None:
    """List registered repos."""
    repos = app.store.list_repos()
    if as_json:
        emit_json([repo_document(r) for r in repos])
        return
    if not repos:
        notice("no repos yet: orch repo add NAME PATH")
        return
    table = Table("name", "path", "branch", "tests", "skipped stages", box=None)
    for r in repos:
        tests = r.test_command or f"python -m pytest {r.test_target}"
        skipped = ",".join(sorted(r.skip_stages)) or "-"
        table.add_row(
            r.name + (" (self)" if r.is_self else ""), r.path, r.default_branch, tests, skipped
        )
    console.print(table)


@repo.command("show")
@click.argument("name")
@click.option(
    "--pipeline",
    "show_pipeline",
    is_flag=True,
    help="The pipeline in force for its next task: the default branch's orch.toml, or the "
    "built-in one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@pass_app
def repo_show(app: AppContext, name: str, show_pipeline: bool, as_json: bool) -> None:
    """Show a repo's settings, or with --pipeline the stages its tasks run."""
    shown = app.store.get_repo(check_repo_name(name))
    if not show_pipeline:
        if as_json:
            emit_json(repo_document(shown))
            return
        table = Table(box=None, show_header=False)
        for key, value in repo_document(shown).items():
            table.add_row(key, "-" if value in (None, [], "") else str(value))
        console.print(table)
        return
    document = pipeline_document(repo_pipeline(app.settings.home, shown), shown.skip_stages)
    if as_json:
        emit_json(document)
        return
    notice(f"pipeline of {shown.name}: {document['source']}")
    table = Table("#", "stage", "kind", "produced by", "artifact", "on pass", "on fail", box=None)
    for number, stage in enumerate(document["stages"], 1):
        by = stage["runner"] or stage["agent"] or "person"
        if stage["runner"] and stage["agent"]:
            by = f"{stage['runner']} (else {stage['agent']})"
        elif stage["person"]:
            by = "person"
        name_shown = stage["name"] + (" (skipped)" if stage["skipped"] else "")
        if stage["kind"] == "check":
            name_shown += f": {' '.join(stage['command'])}"
        table.add_row(
            str(number),
            name_shown,
            stage["kind"],
            by,
            stage["artifact"],
            stage["on_pass"],
            stage["on_fail"],
        )
    console.print(table)
