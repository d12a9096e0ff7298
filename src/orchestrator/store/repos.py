"""Queries on registered repositories."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import insert, select, update

from orchestrator.errors import Conflict, NotFound
from orchestrator.pipeline.stages import format_stage_list
from orchestrator.store.base import StoreBase, utcnow
from orchestrator.store.records import DEFAULT_TEST_TARGET, Repo, RepoSpec
from orchestrator.store.schema import repos


def _columns(spec: RepoSpec) -> dict[str, object]:
    values = {key: value for key, value in asdict(spec).items() if value is not None}
    if spec.skip_stages is not None:
        values["skip_stages"] = format_stage_list(spec.skip_stages)
    # An empty string clears an optional command or URL (stored as NULL).
    for key in (
        "test_command",
        "staging_command",
        "deploy_command",
        "health_url",
        "setup_command",
        "junit_path",
    ):
        if values.get(key) == "":
            values[key] = None
    return values


class RepoQueries(StoreBase):
    """Add, change, find and list repos."""

    def add_repo(self, name: str, spec: RepoSpec) -> Repo:
        """Register a repo; Conflict when the name is taken."""
        if spec.path is None or spec.default_branch is None:
            raise ValueError("a new repo needs a path and a default branch")
        values = {
            "test_target": DEFAULT_TEST_TARGET,
            "is_self": False,
            "is_remote": False,
            **_columns(spec),
        }
        with self._write() as conn:
            if conn.execute(select(repos.c.id).where(repos.c.name == name)).first():
                raise Conflict(f"repo {name!r} already exists (change it with: orch repo set)")
            row = conn.execute(
                insert(repos).values(name=name, created_at=utcnow(), **values).returning(repos)
            ).one()
        return Repo.from_row(row)

    def update_repo(self, name: str, spec: RepoSpec) -> Repo:
        """Change the given fields of a repo; NotFound when there is none of that name."""
        values = _columns(spec)
        with self._write() as conn:
            # Nothing to change still goes through UPDATE, so a missing repo is reported.
            changes = values or {"name": name}
            statement = update(repos).where(repos.c.name == name).values(**changes)
            row = conn.execute(statement.returning(repos)).first()
        if row is None:
            raise NotFound(f"no repo named {name!r} (see: orch repo list)")
        return Repo.from_row(row)

    def get_repo(self, name: str) -> Repo:
        """The repo of that name; NotFound otherwise."""
        with self._read() as conn:
            row = conn.execute(select(repos).where(repos.c.name == name)).first()
        if row is None:
            raise NotFound(f"no repo named {name!r} (see: orch repo list)")
        return Repo.from_row(row)

    def list_repos(self) -> list[Repo]:
        """Every repo, by name."""
        with self._read() as conn:
            rows = conn.execute(select(repos).order_by(repos.c.name)).all()
        return [Repo.from_row(row) for row in rows]
