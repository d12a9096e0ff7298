"""Merging a task branch into the default branch on real repositories, never losing work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from orchestrator.errors import StaleState
from orchestrator.intake import submit_task
from orchestrator.pipeline.gates import GateStatus, run_gate
from orchestrator.pipeline.stages import Stage
from orchestrator.pipeline.verdicts import parse_verdict_keys
from orchestrator.proc import CancelToken
from orchestrator.runners.base import FailureKind, RunnerRequest
from orchestrator.runners.deploy_finalizer import (
    DeployFinalizer,
    MergeRefused,
    checked_out_at,
    merge_branch,
)
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store
from orchestrator.store.schema import jobs
from orchestrator.workspace import checkout
from tests.helpers import git, sqlite_only, unique_marker

BRANCH = "orch/k3m9qz2a"
MESSAGE = "Merge orch/k3m9qz2a: Add a flag (task k3m9qz2a)"


def commit(where: Path, files: dict[str, str], message: str) -> str:
    for name, content in files.items():
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_text(content)
    git(where, "add", "-A")
    git(where, "commit", "-q", "-m", message)
    return rev(where, "HEAD")


def rev(where: Path, ref: str) -> str:
    return git(where, "rev-parse", ref).strip()


def status(where: Path) -> str:
    return git(where, "status", "--porcelain", "--untracked-files=all")


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    """The user's working copy, on main, with two tracked files."""
    return make_repo("app", files={"app.py": "VERSION = 1\n", "other.txt": "other\n"})


@pytest.fixture
def worktree(repo: Path, tmp_path: Path) -> Path:
    """The task's worktree on its own branch, as intake makes it."""
    path = tmp_path / "worktrees" / "k3m9qz2a"
    git(repo, "worktree", "add", "-q", "-b", BRANCH, str(path), "main")
    return path


@pytest.fixture
def feature(worktree: Path) -> str:
    """The task's work: app.py changed and new.txt added, committed on the task branch."""
    return commit(worktree, {"app.py": "VERSION = 2\n", "new.txt": "from the task\n"}, "work")


@pytest.mark.parametrize("main_moved_on", [False, True])
def test_clean_merge_makes_a_merge_commit_and_updates_the_users_checkout(
    repo: Path, feature: str, main_moved_on: bool
) -> None:
    if main_moved_on:
        commit(repo, {"notes.md": "the user's own commit\n"}, "notes")
    base = rev(repo, "main")

    merge = merge_branch(repo, BRANCH, "main", MESSAGE)

    assert (merge.base, merge.merged) == (base, rev(repo, "main"))
    assert git(repo, "rev-list", "--parents", "-n", "1", merge.merged).split() == [
        merge.merged,
        base,
        feature,
    ]
    assert git(repo, "log", "-1", "--format=%s", merge.merged).strip() == MESSAGE
    assert merge.working_copy is not None
    assert Path(merge.working_copy).resolve() == repo.resolve()
    assert rev(repo, "HEAD") == merge.merged
    assert (repo / "app.py").read_text() == "VERSION = 2\n"
    assert (repo / "new.txt").read_text() == "from the task\n"
    assert status(repo) == ""
    if main_moved_on:
        assert (repo / "notes.md").read_text() == "the user's own commit\n"


def test_untracked_files_in_the_working_copy_survive(repo: Path, feature: str) -> None:
    (repo / "scratch.txt").write_text("my notes\n")
    (repo / "drafts").mkdir()
    (repo / "drafts" / "idea.md").write_text("an idea\n")

    merge = merge_branch(repo, BRANCH, "main", MESSAGE)

    assert rev(repo, "HEAD") == merge.merged
    assert (repo / "scratch.txt").read_text() == "my notes\n"
    assert (repo / "drafts" / "idea.md").read_text() == "an idea\n"
    assert status(repo) == "?? drafts/idea.md\n?? scratch.txt\n"


def test_uncommitted_edit_to_a_file_the_merge_leaves_alone_survives(
    repo: Path, feature: str
) -> None:
    (repo / "other.txt").write_text("my edit, not committed\n")

    merge = merge_branch(repo, BRANCH, "main", MESSAGE)

    assert rev(repo, "main") == merge.merged != merge.base
    assert (repo / "app.py").read_text() == "VERSION = 2\n"
    assert (repo / "other.txt").read_text() == "my edit, not committed\n"
    assert status(repo) == " M other.txt\n"


@pytest.mark.parametrize("staged", [False, True])
def test_uncommitted_edit_to_a_file_the_merge_touches_refuses_and_changes_nothing(
    repo: Path, feature: str, staged: bool
) -> None:
    base = rev(repo, "main")
    (repo / "app.py").write_text("VERSION = 'mine'\n")
    if staged:
        git(repo, "add", "app.py")
    before = status(repo)

    with pytest.raises(MergeRefused) as refused:
        merge_branch(repo, BRANCH, "main", MESSAGE)

    assert refused.value.kind is FailureKind.DIRTY
    assert "app.py" in str(refused.value)
    assert rev(repo, "main") == rev(repo, "HEAD") == base
    assert (repo / "app.py").read_text() == "VERSION = 'mine'\n"
    assert not (repo / "new.txt").exists()
    assert status(repo) == before


def test_untracked_file_in_the_way_of_an_incoming_file_refuses(repo: Path, feature: str) -> None:
    base = rev(repo, "main")
    (repo / "new.txt").write_text("the user's own new.txt\n")

    with pytest.raises(MergeRefused) as refused:
        merge_branch(repo, BRANCH, "main", MESSAGE)

    assert refused.value.kind is FailureKind.DIRTY
    assert "new.txt" in str(refused.value)
    assert rev(repo, "main") == base
    assert (repo / "new.txt").read_text() == "the user's own new.txt\n"
    assert (repo / "app.py").read_text() == "VERSION = 1\n"


def test_conflict_refuses_naming_the_path_and_leaves_no_merge_state(
    repo: Path, feature: str
) -> None:
    base = commit(repo, {"app.py": "VERSION = 'main'\n"}, "a rival change")
    (repo / "scratch.txt").write_text("untracked\n")

    with pytest.raises(MergeRefused) as refused:
        merge_branch(repo, BRANCH, "main", MESSAGE)

    assert refused.value.kind is FailureKind.CONFLICT
    assert "app.py" in str(refused.value)
    assert "new.txt" not in str(refused.value)  # added on one side only: no conflict
    assert rev(repo, "main") == rev(repo, "HEAD") == base
    assert (repo / "app.py").read_text() == "VERSION = 'main'\n"
    assert status(repo) == "?? scratch.txt\n"
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    assert not (git_dir / "MERGE_HEAD").exists()
    assert rev(repo, BRANCH) == feature


def test_conflict_names_every_conflicting_path(repo: Path, worktree: Path) -> None:
    commit(worktree, {"app.py": "VERSION = 'task'\n", "other.txt": "task\n"}, "task")
    commit(repo, {"app.py": "VERSION = 'main'\n", "other.txt": "main\n"}, "rival")

    with pytest.raises(MergeRefused) as refused:
        merge_branch(repo, BRANCH, "main", MESSAGE)

    assert refused.value.kind is FailureKind.CONFLICT
    assert "app.py" in str(refused.value) and "other.txt" in str(refused.value)


def test_main_checked_out_nowhere_moves_only_the_ref(repo: Path, feature: str) -> None:
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "scratch.txt").write_text("untracked\n")
    base = rev(repo, "main")

    merge = merge_branch(repo, BRANCH, "main", MESSAGE)

    assert merge.working_copy is None
    assert merge.base == base
    assert rev(repo, "main") == merge.merged
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [base, feature]
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "topic"
    assert rev(repo, "HEAD") == base
    assert (repo / "app.py").read_text() == "VERSION = 1\n"
    assert not (repo / "new.txt").exists()
    assert status(repo) == "?? scratch.txt\n"


def test_merging_again_is_a_no_op(repo: Path, feature: str) -> None:
    first = merge_branch(repo, BRANCH, "main", MESSAGE)
    commit(repo, {"later.txt": "another task's\n"}, "later")  # main moves on
    log_before = git(repo, "log", "--oneline", "main")
    again = merge_branch(repo, BRANCH, "main", MESSAGE)

    # Nothing moves, and the merge that landed the branch is named, with what it merged onto.
    assert (again.base, again.merged) == (first.base, first.merged)
    assert again.to_deploy == rev(repo, "main")  # a deploy ships main as it is, not older
    assert again.working_copy is None
    assert git(repo, "log", "--oneline", "main") == log_before


def test_a_branch_without_new_commits_is_already_merged(repo: Path, worktree: Path) -> None:
    base = rev(repo, "main")

    merge = merge_branch(repo, BRANCH, "main", MESSAGE)

    assert merge.merged == merge.base == base == rev(repo, "main")
    assert "already part of main" in merge.note


def test_checked_out_at_finds_the_working_copy_and_a_linked_worktree(
    repo: Path, worktree: Path
) -> None:
    git(repo, "branch", "idle")

    main_at, branch_at = checked_out_at(repo, "main"), checked_out_at(repo, BRANCH)

    assert main_at is not None and main_at.resolve() == repo.resolve()
    assert branch_at is not None and branch_at.resolve() == worktree.resolve()
    assert checked_out_at(worktree, "main") == main_at  # asked from the worktree, same answer
    assert checked_out_at(repo, "idle") is None
    assert checked_out_at(repo, "no-such-branch") is None
    assert checked_out_at(repo, "mai") is None  # a prefix is not a match


# --- the runner: merge, deploy, and the deploy log for the gate -------------------------------


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: the finalizer reads its records, it never queries the database."""
    return sqlite_only(tmp_path, monkeypatch)


@pytest.fixture
def task_request(
    store: Store, orch_home: Path, repo: Path, tmp_path: Path
) -> Iterator[Callable[..., RunnerRequest]]:
    """A real task on `repo` with committed work; builds the finalizer's request."""
    store.add_repo("app", RepoSpec(path=str(repo), default_branch="main"))
    task = submit_task(store, orch_home, "app", "Add a flag", "")
    commit(Path(task.worktree), {"app.py": "VERSION = 2\n"}, "work")
    token = CancelToken()

    def make(deploy_command: str = "") -> RunnerRequest:
        return RunnerRequest(
            task=task,
            repo=store.update_repo("app", RepoSpec(deploy_command=deploy_command)),
            job=store.task_jobs(task.id)[0],
            settings=load_settings(),
            artifact_path=tmp_path / "16-deploy-log.md",
            log_path=tmp_path / "deploy.log",
            cancel=token,
            on_start=lambda started: None,
            marker=unique_marker(),  # the group's sweep kills by marker
        )

    yield make
    token.close()


def test_finalizer_merges_and_reports_deployed(
    repo: Path, task_request: Callable[..., RunnerRequest]
) -> None:
    base = rev(repo, "main")

    outcome = DeployFinalizer().run(task_request())

    assert outcome.artifact is not None
    keys = parse_verdict_keys(outcome.artifact)
    assert run_gate(Stage.DEPLOY, outcome.artifact).passed
    assert keys["merged_commit"] == (rev(repo, "main"),)
    assert keys["base_commit"] == (base,)
    assert keys["producer"] == ("deploy-finalizer",)
    assert (repo / "app.py").read_text() == "VERSION = 2\n"


def test_finalizer_reports_a_conflict_as_failed_and_keeps_main(
    repo: Path, task_request: Callable[..., RunnerRequest]
) -> None:
    base = commit(repo, {"app.py": "VERSION = 'main'\n"}, "rival")

    outcome = DeployFinalizer().run(task_request())

    assert outcome.artifact is not None
    keys = parse_verdict_keys(outcome.artifact)
    assert run_gate(Stage.DEPLOY, outcome.artifact).status is GateStatus.FAILED
    assert keys["failure_kind"] == ("conflict",)
    assert keys["merged_commit"] == ("-",)
    assert "app.py" in outcome.artifact
    assert rev(repo, "main") == base


@pytest.mark.parametrize(("code", "deployed"), [(0, True), (1, False)])
def test_finalizer_runs_the_deploy_command_on_the_merged_code(
    repo: Path, task_request: Callable[..., RunnerRequest], code: int, deployed: bool
) -> None:
    script = f"print(open('app.py').read().strip()); raise SystemExit({code})"

    outcome = DeployFinalizer().run(task_request(f'python -c "{script}"'))

    assert outcome.artifact is not None
    keys = parse_verdict_keys(outcome.artifact)
    assert run_gate(Stage.DEPLOY, outcome.artifact).passed is deployed
    assert keys["failure_kind"] == ("none" if deployed else "deploy",)
    assert "VERSION = 2" in outcome.artifact  # the deploy saw the merged code
    assert keys["merged_commit"] == (rev(repo, "main"),)


def test_an_attempt_whose_lease_lapsed_neither_merges_nor_deploys(
    repo: Path, store: Store, task_request: Callable[..., RunnerRequest], tmp_path: Path
) -> None:
    [job] = store.claim_jobs("w-a", "machine-a", 1, 30)
    with store.engine.begin() as conn:  # its worker was paused past its lease
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(lease_expires_at=store.now()))
    deployed = tmp_path / "deployed"
    request = task_request(f"touch {deployed}")
    base = rev(repo, "main")
    with checkout.fenced(lambda: store.hold(request.job, 30)), pytest.raises(StaleState):
        DeployFinalizer().run(request)
    assert rev(repo, "main") == base and not deployed.exists()


def test_the_deploy_command_runs_only_while_the_attempt_holds_its_lease(
    repo: Path, store: Store, task_request: Callable[..., RunnerRequest], tmp_path: Path
) -> None:
    [job] = store.claim_jobs("w-a", "machine-a", 1, 30)
    deployed = tmp_path / "deployed"
    request = task_request(f"touch {deployed}")
    checks: list[str] = []

    def hold() -> None:  # the lease lapses after the merge, before the deploy command
        checks.append(rev(repo, "main"))
        store.hold(request.job, 30)
        with store.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job.id).values(lease_expires_at=store.now())
            )

    with checkout.fenced(hold), pytest.raises(StaleState):
        DeployFinalizer().run(request)
    assert len(checks) == 2 and not deployed.exists()  # merged, then stopped at the deploy
