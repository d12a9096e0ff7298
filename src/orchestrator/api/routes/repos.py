"""Repos: list and create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from orchestrator.api.models import RepoCreate
from orchestrator.api.security import Writer
from orchestrator.api.state import State
from orchestrator.documents import repo_document
from orchestrator.registry import RepoOptions, register_repo

router = APIRouter(prefix="/repos", tags=["repos"])


@router.get("", summary="List repos")
def list_repos(state: State) -> list[dict[str, Any]]:
    """Every registered repo, by name."""
    return [repo_document(r) for r in state.store.list_repos()]


@router.post("", status_code=201, dependencies=[Writer], summary="Register a repo")
def create_repo(body: RepoCreate, state: State) -> dict[str, Any]:
    """Register a git working copy on the server's machine."""
    options = RepoOptions(
        default_branch=body.default_branch,
        test_target=body.test_target,
        test_command=body.test_command,
        staging_command=body.staging_command,
        deploy_command=body.deploy_command,
        health_url=body.health_url,
        setup_command=body.setup_command,
        junit_path=body.junit_path,
        skip_stages=",".join(stage.value for stage in body.skip_stages),
        is_self=body.self_repo,
    )
    return repo_document(register_repo(state.store, body.name, Path(body.path), options))
