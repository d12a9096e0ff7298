"""Registering repositories: validate what the user says, then store it."""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from orchestrator.errors import Conflict, GitError, InputError
from orchestrator.pipeline.names import check_repo_name
from orchestrator.pipeline.pipelines import PIPELINE_FILE, Pipeline, PipelineError, read_pipeline
from orchestrator.pipeline.stages import Stage, parse_stage_list
from orchestrator.selfhost.code import code_checkout
from orchestrator.store import Repo, RepoSpec, Store
from orchestrator.workspace import checkout, git

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepoOptions:
    """A repo's settings as a user typed them; None leaves a setting as it is (or default)."""

    default_branch: str | None = None
    test_target: str | None = None
    test_command: str | None = None
    staging_command: str | None = None
    deploy_command: str | None = None
    health_url: str | None = None
    setup_command: str | None = None
    skip_stages: str | None = None
    is_self: bool | None = None
    junit_path: str | None = None


# A git URL: scheme://..., or scp-like user@host:path.
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")


def register_repo(store: Store, name: str, location: str | Path, options: RepoOptions) -> Repo:
    """Add a repo: the path of a git working copy (used in place, one machine), or a git URL
    or bare repository (every worker clones it). The default branch defaults to its own."""
    check_repo_name(name)
    where = str(location)
    try:
        remote = bool(_URL.match(where)) or _is_bare(where)
        local = Path(where).expanduser()
        if not remote and not local.exists():
            raise InputError(f"{_shown(where)} does not exist")
        root = None if remote else git.toplevel(local.resolve())
    except GitError as exc:  # not a folder, or not in a working copy: the user's path
        raise InputError(str(exc)) from None
    except RuntimeError as exc:  # `~nosuchuser/...`: no such home folder
        raise InputError(f"cannot resolve {_shown(where)}: {exc}") from None
    except OSError as exc:  # a name too long, a folder we may not enter: the user's path
        raise InputError(f"cannot use {_shown(where)}: {exc.strerror or exc}") from None
    if options.is_self:
        _check_self_location(where, root)
    if root is None:
        return _register_remote(store, name, where, options)
    branch = options.default_branch or git.current_branch(root)
    if branch is None:
        raise InputError(f"{root} has a detached HEAD: give --default-branch")
    spec = _spec(options, root, branch)
    _check_single_self(store, name, spec)
    _check_one_name(store, name, root)
    _check_pipeline(root, branch, spec.skip_stages or frozenset())
    return store.add_repo(name, RepoSpec(**{**spec.__dict__, "path": str(root)}))


def _shown(where: str, limit: int = 120) -> str:
    """A path as an error line shows it: one line, and not hundreds of characters."""
    return where if len(where) <= limit else f"{where[: limit - 3]}..."


def _is_bare(where: str) -> bool:
    path = Path(where).expanduser()
    if not path.is_dir():
        return False
    result = git.git(path, "rev-parse", "--is-bare-repository", check=False)
    return result.ok and result.stdout.strip() == "true"


def _remote_branches(url: str) -> tuple[str | None, set[str]]:
    """The remote's HEAD branch and its branches; InputError when it cannot be read."""
    listing = git.git(".", "ls-remote", "--symref", url, "HEAD", "refs/heads/*", check=False,
                      timeout=60)  # fmt: skip
    if not listing.ok:
        lines = (listing.stderr or listing.stdout).strip().splitlines()
        raise InputError(f"cannot read the git remote {url}: {lines[-1] if lines else 'failed'}")
    head: str | None = None
    branches: set[str] = set()
    for line in listing.stdout.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            head = line.removeprefix("ref: refs/heads/").split("\t")[0]
        elif "\trefs/heads/" in line:
            branches.add(line.split("\trefs/heads/", 1)[1])
    return head, branches


def _register_remote(store: Store, name: str, url: str, options: RepoOptions) -> Repo:
    head, branches = _remote_branches(url)
    branch = options.default_branch or head
    if branch is None or branch not in branches:
        shown = branch or "its HEAD"
        raise InputError(f"the remote {url} has no branch {shown} with a commit on it")
    spec = _spec(replace(options, default_branch=None), Path("."), None)
    _check_single_self(store, name, spec)
    values = {**spec.__dict__, "path": url, "default_branch": branch, "is_remote": True}
    return store.add_repo(name, RepoSpec(**values))


def change_repo(store: Store, name: str, options: RepoOptions) -> Repo:
    """Change a repo's settings; only the options given change."""
    check_repo_name(name)
    repo = store.get_repo(name)
    if options.is_self:
        _check_self_location(repo.path, None if repo.is_remote else Path(repo.path))
    if repo.is_remote and options.default_branch is not None:
        _, branches = _remote_branches(repo.path)
        if options.default_branch not in branches:
            raise InputError(f"the remote {repo.path} has no branch {options.default_branch!r}")
        spec = _spec(replace(options, default_branch=None), Path("."), None)
        spec = replace(spec, default_branch=options.default_branch)
        _check_single_self(store, name, spec)
        return store.update_repo(name, spec)
    spec = _spec(options, Path(repo.path), options.default_branch)
    _check_single_self(store, name, spec)
    skipped = repo.skip_stages if spec.skip_stages is None else spec.skip_stages
    _check_pipeline(Path(repo.path), spec.default_branch or repo.default_branch, skipped)
    return store.update_repo(name, spec)


def _spec(options: RepoOptions, root: Path, branch: str | None) -> RepoSpec:
    if branch is not None:
        git.check_branch_name(root, branch)
        if not git.has_branch(root, branch):
            raise InputError(f"{root} has no branch {branch!r} with a commit on it")
    try:
        skip = parse_stage_list(options.skip_stages) if options.skip_stages is not None else None
    except ValueError as exc:
        raise InputError(f"--skip-stages: {exc}") from None
    return RepoSpec(
        default_branch=branch,
        test_target=_test_target(options.test_target),
        test_command=_command("--test-command", options.test_command),
        staging_command=_command("--staging-command", options.staging_command),
        deploy_command=_command("--deploy-command", options.deploy_command),
        setup_command=_command("--setup-command", options.setup_command),
        health_url=_url("--health-url", options.health_url),
        skip_stages=skip,
        is_self=options.is_self,
        junit_path=_inside("--junit-path", options.junit_path, clears=True),
    )


def _check_pipeline(root: Path, branch: str, skipped: frozenset[Stage]) -> None:
    """Refuse a repo whose default branch declares a pipeline its tasks could not run."""
    pipeline_at(root, branch).start(skipped)


def _command(option: str, value: str | None) -> str | None:
    """A command is stored as typed and split into an argv at run time; check it splits now."""
    if value is None or value == "":
        return value  # "" clears it
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise InputError(f"{option}: cannot split {value!r} into arguments: {exc}") from None
    if not argv:
        raise InputError(f"{option}: the command is blank")
    return value


def _url(option: str, value: str | None) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        raise InputError(f"{option}: expected an http:// or https:// URL, got {value!r}")
    return value


def _test_target(value: str | None) -> str | None:
    return _inside("--test-target", value)


def _inside(option: str, value: str | None, clears: bool = False) -> str | None:
    """A path inside the repo (its worktree), as typed; "" clears it where `clears`."""
    if value is None or (clears and value == ""):
        return value
    target = PurePosixPath(value.strip())
    if not value.strip() or target.is_absolute() or ".." in target.parts:
        raise InputError(f"{option}: expected a path inside the repo, got {value!r}")
    return str(target)


def _check_self_location(where: str, root: Path | None) -> None:
    """--self marks the working copy the service runs from: never a URL or a bare repo. One
    that is not the running code's checkout is allowed (the service may be started from it
    later), with a warning: a self deploy is refused until the service runs from it."""
    if root is None:
        raise InputError(
            f"--self: {_shown(where)} is a URL or a bare repository; the self repo must be "
            "the local working copy the service runs from"
        )
    running = code_checkout()
    if running is None or running.resolve() != root.resolve():
        log.warning(
            "warning: --self: this orchestrator runs from %s, not %s; self deploys are refused "
            "until `orch serve` runs from it",
            running or "no git checkout",
            root,
        )


def _check_one_name(store: Store, name: str, root: Path) -> None:
    # Two names for one working copy would put two tasks' branches and merges on it through
    # two serial gates: the merge queue would no longer be one queue.
    for repo in store.list_repos():
        if repo.name != name and not repo.is_remote and Path(repo.path) == root:
            raise Conflict(f"{root} is already registered as {repo.name!r}")


def _check_single_self(store: Store, name: str, spec: RepoSpec) -> None:
    # The self repo is the checkout the running service is started from: there is one.
    if not spec.is_self:
        return
    others = [repo.name for repo in store.list_repos() if repo.is_self and repo.name != name]
    if others:
        raise Conflict(
            f"repo {others[0]!r} is already the self repo (orch repo set {others[0]} --no-self)"
        )


def what_is_missing(repo: Repo) -> list[str]:
    """What each command or URL the repo lacks means for its tasks (stages it switched off
    aside): said once when it is registered or changed."""
    said = []
    if Stage.DEPLOY_STAGING not in repo.skip_stages and not repo.staging_command:
        said.append("no staging command: staging is SKIPPED (--staging-command adds one)")
    if Stage.DEPLOY not in repo.skip_stages and not repo.deploy_command:
        said.append("no deploy command: the merge into the default branch is the deploy")
    if Stage.POST_DEPLOY not in repo.skip_stages and not repo.health_url and not repo.is_self:
        said.append("no health URL: the post-deploy watch is SKIPPED (--health-url adds one)")
    return said


def pipeline_at(root: Path, rev: str) -> Pipeline:
    """The pipeline the `orch.toml` of commit `rev` declares (the built-in one without it);
    PipelineError, one line, when it cannot be one."""
    try:
        text = git.file_at(root, rev, PIPELINE_FILE)
    except GitError as exc:
        raise PipelineError(f"{PIPELINE_FILE}: {exc}") from None
    return read_pipeline(text)


def repo_pipeline(home: Path, repo: Repo) -> Pipeline:
    """The pipeline in force for the repo's next task: its default branch's `orch.toml` now
    (a remote is fetched first)."""
    root = checkout.git_dir(home, repo)
    rev = f"refs/remotes/origin/{repo.default_branch}" if repo.is_remote else repo.default_branch
    return pipeline_at(root, rev)
