"""GET /metrics: read from the store at scrape time, in the Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from orchestrator.pipeline.stages import TaskState
from orchestrator.store import Store


class StoreCollector(Collector):
    """Gauges and counters computed from the database on each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        counts = self.store.counts()
        tasks = GaugeMetricFamily("orch_tasks", "Tasks by state", labels=["state"])
        for state in TaskState:
            tasks.add_metric([state.value], counts.by_state.get(state, 0))
        yield tasks

        stages = GaugeMetricFamily("orch_active_tasks", "Active tasks by stage", labels=["stage"])
        for stage, count in counts.by_stage.items():
            stages.add_metric([stage], count)
        yield stages

        figures = self.store.determinization()
        transitions = CounterMetricFamily(
            "orch_transitions", "Stage moves made by gate verdicts", labels=["producer"]
        )
        for producer, count in figures.verdicts_by_producer.items():
            transitions.add_metric([producer], count)
        yield transitions

        queue = self.store.queue()
        jobs = GaugeMetricFamily("orch_jobs", "Live jobs by status", labels=["status"])
        jobs.add_metric(["running"], len(queue.running))
        jobs.add_metric(["queued"], len(queue.queued))
        jobs.add_metric(["deferred"], len(queue.deferred))
        yield jobs

        durations = self.store.job_durations()
        seconds = CounterMetricFamily(
            "orch_job_duration_seconds", "Time spent in finished jobs", labels=["producer"]
        )
        finished = CounterMetricFamily(
            "orch_jobs_finished", "Finished jobs", labels=["producer", "outcome"]
        )
        for (producer, outcome), (count, _seconds) in durations.items():
            finished.add_metric([producer, outcome], count)
        for producer in sorted({p for p, _ in durations}):
            total = sum(t for (p, _), (_, t) in durations.items() if p == producer)
            seconds.add_metric([producer], total)
        yield finished
        yield seconds

        yield CounterMetricFamily(
            "orch_llm_calls_avoided",
            "Runner verdicts that replaced an LLM call",
            value=figures.llm_calls_avoided,
        )
        yield CounterMetricFamily(
            "orch_agent_tokens_in", "Tokens sent to agents", value=figures.tokens_in
        )
        yield CounterMetricFamily(
            "orch_agent_tokens_out", "Tokens agents produced", value=figures.tokens_out
        )
        yield CounterMetricFamily("orch_agent_cost_usd", "What agents cost", value=figures.cost_usd)


def render_metrics(store: Store) -> tuple[bytes, str]:
    """The metrics page and its content type."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    return generate_latest(registry), CONTENT_TYPE_LATEST
