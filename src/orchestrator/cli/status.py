"""`orch queue` and `orch status`: what runs, what waits, what needs a person, what it cost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import console, emit_json
from orchestrator.documents import json_key, worker_document
from orchestrator.overview import queue_report, status_report
from orchestrator.pipeline.stages import STAGE_ORDER
from orchestrator.store.base import utcnow


def _ago(when: str | None) -> str:
    if when is None:
        return "-"
    seconds = (utcnow() - datetime.fromisoformat(when)).total_seconds()
    return f"{seconds:.0f}s ago" if seconds >= 0 else f"in {-seconds:.0f}s"


def job_when(job: dict[str, Any]) -> str:
    """When a live job started, was queued, or (deferred) runs again: "running for 12s",
    "queued 3s ago", "retries in 2s"."""
    if job["status"] == "deferred":
        return "retries " + _ago(job["not_before"]).replace(" ago", " ago (due)")
    if job["status"] == "running":
        return "started " + _ago(job["started_at"] or job["created_at"])
    return "queued " + _ago(job["created_at"])


def job_note(job: dict[str, Any]) -> str:
    """Why a deferred job waits: the error that deferred it."""
    if job["status"] != "deferred":
        return ""
    return f"{job['error_kind']}: {job['error_message'] or ''}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the document of GET /queue).")
@pass_app
def queue(app: AppContext, as_json: bool) -> None:
    """Running, queued and deferred jobs, each repo's serial gate, and the runners."""
    document = queue_report(app.store, app.settings)
    if as_json:
        emit_json(document)
        return
    table = Table("job", "task", "repo", "stage", "status", "attempt", "when", "note", box=None)
    for group in ("running", "queued", "deferred"):
        for job in document[group]:
            table.add_row(
                str(job["id"]),
                job["task_id"],
                job["repo"],
                job["stage"],
                job["status"],
                str(job["attempt"]),
                job_when(job),
                job_note(job)[:60],
            )
    console.print(table if table.row_count else "no live jobs")
    for repo, gate in document["serial_gate"].items():
        if gate["holder"] or gate["waiting"]:
            tested = gate.get("tested", {})
            holder = _tested_on(gate["holder"], tested) if gate["holder"] else "nobody"
            waiting = ", ".join(_tested_on(t, tested) for t in gate["waiting"]) or "nobody"
            console.print(f"serial gate {repo}: held by {holder}, waiting to merge: {waiting}")
    for task in document["waiting_for_person"]:
        console.print(
            f"task {task['task_id']} ({task['repo']}) waits in {task['stage']} for a person: "
            f"orch task approve {task['task_id']}, or reject it with a reason"
        )


def _tested_on(task_id: str, tested: dict[str, Any]) -> str:
    """A task in the merge queue, with the base its test ran on when it has one."""
    found = tested.get(task_id)
    return f"{task_id} (tested on {found['base_commit'][:12]})" if found else task_id


def _usage_table(figures: dict[str, Any]) -> Table:
    table = Table(
        "stage", "by code", "by LLM", "agent calls", "tokens in", "tokens out", "cost", box=None
    )
    for stage in STAGE_ORDER:
        row = figures["by_stage"].get(json_key(stage.value))
        if row is None:
            continue
        table.add_row(
            stage.value,
            str(row["verdicts_by_code"]),
            str(row["verdicts_by_llm"]),
            str(row["agent_calls"]),
            str(row["tokens_in"]),
            str(row["tokens_out"]),
            f"${row['cost_usd']:.4f}",
        )
    return table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the document of GET /status).")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Tasks by state and stage, blocked tasks and why, alerts, workers, usage and cost."""
    document = status_report(app.store)
    if as_json:
        emit_json(document)
        return
    states = document["tasks"]["by_state"]
    console.print("tasks: " + (", ".join(f"{n} {s}" for s, n in states.items()) or "none"))
    stages = document["tasks"]["by_stage"]
    if stages:
        built_in = {json_key(s): s.value for s in STAGE_ORDER}
        # The built-in stages in pipeline order, then the stages of repos' own pipelines.
        keys = [k for k in built_in if k in stages] + sorted(set(stages) - set(built_in))
        # A stage of a repo's own has no "_" in its name: its JSON key maps back exactly.
        active = ", ".join(f"{stages[k]} in {built_in.get(k, k.replace('_', '-'))}" for k in keys)
        console.print("active: " + active)
    jobs = document["jobs"]
    console.print(
        f"jobs: {jobs['running']} running, {jobs['queued']} queued, {jobs['deferred']} deferred"
    )
    for blocked in document["blocked"]:
        console.print(
            f"[yellow]blocked[/] {blocked['id']} in {blocked['stage']}: {blocked['reason']}"
        )
    for alert in document["alerts"]["latest"][:10]:
        console.print(f"[red]alert[/] #{alert['id']} {alert['kind']}: {alert['message']}")
    for worker in document["workers"]:
        console.print(
            f"worker {worker['id']} on {worker['host']} (pid {worker['pid']}, {worker['state']})"
        )
    figures = document["determinization"]
    console.print(
        f"verdicts: {figures['verdicts_deterministic']} by code, {figures['verdicts_llm']} by "
        f"LLM agents; LLM calls avoided: {figures['llm_calls_avoided']} (tokens avoided: "
        f"{figures['tokens_avoided_estimate']}); agents: {figures['agent_calls']} calls, "
        f"{figures['tokens_in']} tokens in, {figures['tokens_out']} out, "
        f"${figures['cost_usd']:.4f}"
    )
    if figures["by_stage"]:
        console.print(_usage_table(figures))


@click.command()
@click.option("--all", "everyone", is_flag=True, help="Include workers that stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def workers(app: AppContext, everyone: bool, as_json: bool) -> None:
    """Worker processes: host, pid, last heartbeat, and the jobs each holds."""
    listed = app.store.list_workers(running_only=not everyone)
    holding: dict[str, list[int]] = {}
    for job in app.store.running_jobs():
        holding.setdefault(job.worker_id or "", []).append(job.id)
    documents = [{**worker_document(w), "jobs": holding.get(w.id, [])} for w in listed]
    if as_json:
        emit_json(documents)
        return
    table = Table("worker", "host", "pid", "started", "heartbeat", "jobs", box=None)
    for d in documents:
        state = d["state"] if d["state"] != "running" else _ago(d["heartbeat_at"])
        table.add_row(
            d["id"],
            d["host"],
            str(d["pid"]),
            _ago(d["started_at"]),
            state,
            ",".join(map(str, d["jobs"])) or "-",
        )
    console.print(table if table.row_count else "no workers")
