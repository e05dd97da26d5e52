"""The job's call counters agree with what the target actually received, faults or not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from migrate.jobs.run import run_job
from migrate.replay.target import TargetConfig
from migrate.server.options import FaultSettings, ServerOptions
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import run_config


@pytest.mark.parametrize(
    ("flavour", "create_with_items"), [("openai", False), ("openai", True), ("azure", False)]
)
def test_calls_counted_by_the_job_match_the_requests_the_server_saw(
    flavour: str,
    create_with_items: bool,
    tmp_path: Path,
    source_file: Callable[..., Path],
    local_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test")
    faults = FaultSettings(rates={"drop_after_commit": 0.15, "error_after_commit": 0.1})
    azure = {"flavour": "azure", "api_key": "test"} if flavour == "azure" else {}
    base_url = local_server(ServerOptions.model_validate({"faults": faults, "seed": 7, **azure}))
    # Long conversations, so that reconciliation reads more than one page of items.
    source = source_file(conversations=6, messages=130, tools=False)
    target = (
        TargetConfig(kind="azure", azure_endpoint=base_url, timeout=10)
        if flavour == "azure"
        else TargetConfig(kind="openai", base_url=base_url, timeout=10)
    )
    config = run_config(
        source, tmp_path / "job", concurrency=4, target=target, create_with_items=create_with_items
    )
    summary = run_job(config)
    assert summary.exit_code == 0, summary
    assert summary.reconciliations > 0
    with AdminClient(base_url) as admin:
        seen = admin.stats()["requests"]
    received = sum(
        count
        for route, by_status in seen.items()
        if not route.split(" ")[1].startswith("/_admin")
        for count in by_status.values()
    )
    # One more: the preflight read (a 404 by design) before the job starts, not a job call.
    preflight = [route for route in seen if route.endswith("/conversations/{conversation_id}")]
    assert [seen[route] for route in preflight] == [{"404": 1}], seen
    assert summary.calls + 1 == received, seen
