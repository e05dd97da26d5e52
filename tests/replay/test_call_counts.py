"""The job's call counters agree with what the target actually received, faults or not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from migrate.jobs.run import run_job
from migrate.replay.target import TargetConfig
from migrate.server.options import FaultSettings, ServerOptions
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import run_config


def test_calls_counted_by_the_job_match_the_requests_the_server_saw(
    tmp_path: Path, source_file: Callable[..., Path], local_server: ServerFactory
) -> None:
    faults = FaultSettings(rates={"drop_after_commit": 0.15, "error_after_commit": 0.1})
    base_url = local_server(ServerOptions(faults=faults, seed=7))
    # Long conversations, so that reconciliation reads more than one page of items.
    source = source_file(conversations=6, messages=130, tools=False)
    target = TargetConfig(kind="openai", base_url=base_url, timeout=10)
    summary = run_job(run_config(source, tmp_path / "job", concurrency=4, target=target))
    assert summary.exit_code == 0, summary
    assert summary.reconciliations > 0
    with AdminClient(base_url) as admin:
        seen = admin.stats()["requests"]
    received = sum(
        count
        for route, by_status in seen.items()
        if route.split(" ")[1].startswith("/v1/")
        for count in by_status.values()
    )
    # One more: the preflight read (a 404 by design) before the job starts, not a job call.
    assert seen["GET /v1/conversations/{conversation_id}"] == {"404": 1}
    assert summary.calls + 1 == received, seen
