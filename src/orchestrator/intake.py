"""Intake: a new task gets its id, branch, worktree and `01-task.md`, or nothing at all."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from orchestrator.errors import GitError, InputError
from orchestrator.pipeline.names import check_repo_name
from orchestrator.pipeline.stages import TASK_ARTIFACT
from orchestrator.redact import redact
from orchestrator.registry import pipeline_at
from orchestrator.store import NewTask, Repo, Store, Task
from orchestrator.workspace import checkout, git, layout

TITLE_MAX = 200
_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o or 1/l: ids are read aloud


def new_task_id() -> str:
    """A fresh task id: 8 random characters, unique enough to never meet a taken branch."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def render_task_md(task_id: str, repo: Repo, title: str, description: str, branch: str) -> str:
    """The text of `01-task.md`: what every agent reads first."""
    body = description.strip() or "(no description)"
    return (
        f"# {title}\n\n"
        f"task_id: {task_id}\nrepo: {repo.name}\nbranch: {branch}\n"
        f"base_branch: {repo.default_branch}\n\n"
        f"## Description\n\n{body}\n"
    )


def submit_task(
    store: Store,
    home: Path,
    repo_name: str,
    title: str,
    description: str,
    *,
    secrets: tuple[str, ...] = (),
) -> Task:
    """Create a task in its first stage; on any failure, undo the branch, worktree and files.

    The task keeps the description as written; `01-task.md`, which is stored and which every
    agent reads, has `secrets` (see `redact.secret_values`) masked.
    """
    title = " ".join(title.split())
    if not title:
        raise InputError("the task title is empty")
    if len(title) > TITLE_MAX:
        raise InputError(f"the task title is longer than {TITLE_MAX} characters")
    repo = store.get_repo(check_repo_name(repo_name))
    if not repo.is_remote and not Path(repo.path).is_dir():
        raise GitError(f"repo {repo.name}: {repo.path} no longer exists (orch repo set)")
    root = checkout.git_dir(home, repo)

    task_id = new_task_id()
    while git.has_branch(root, layout.task_branch(task_id)) or git.has_ref(
        root, f"refs/remotes/origin/{layout.task_branch(task_id)}"
    ):
        task_id = new_task_id()
    branch = layout.task_branch(task_id)
    worktree = layout.worktree_dir(home, task_id)
    folder = layout.artifact_dir(home, task_id)
    task_md = redact(render_task_md(task_id, repo, title, description, branch), secrets)

    made_worktree = made_folder = False
    try:
        made_worktree = True  # from here on, undo whatever part of it exists
        checkout.start_branch(home, repo, branch, worktree)
        # The pipeline the task keeps: the default branch's orch.toml as the branch starts
        # from it, never a later edit (an agent's in this very branch included).
        pipeline = pipeline_at(worktree, "HEAD")
        first = pipeline.start(repo.skip_stages)
        folder.mkdir(parents=True, exist_ok=False)
        made_folder = True
        (folder / TASK_ARTIFACT).write_text(task_md, encoding="utf-8")
        new = NewTask(task_id, repo.id, title, description, branch, str(worktree), first, pipeline)
        return store.create_task(new, task_md)
    except BaseException:
        if made_folder:
            shutil.rmtree(folder, ignore_errors=True)
        if made_worktree:
            checkout.undo_branch(home, repo, branch, worktree)
        raise
