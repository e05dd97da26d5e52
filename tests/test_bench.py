"""Smoke test of the benchmarks: every scenario runs at the tiny scale and reports sane figures.

Speed is never asserted here (that is what `bench/run.py` reports); the figures must only be
consistent with each other and with what the protocol allows.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny run of every scenario through the entry point, as JSON."""
    workdir = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "bench/run.py", "--scale", "tiny", "--json", "--workdir", str(workdir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-4000:]
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def _results(report: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    found = [result for result in report["results"] if result["scenario"] == scenario]
    assert found, f"scenario {scenario} reported nothing"
    return found


def test_every_scenario_reports_without_errors(report: dict[str, Any]) -> None:
    assert report["errors"] == {}
    assert {result["scenario"] for result in report["results"]} == {
        "calls",
        "throughput",
        "rate_limit",
        "faults",
        "storm",
        "planning",
        "disk",
        "scale",
    }
    assert report["scale"] == "tiny"
    assert report["machine"]["cpus"] >= 1
    for result in report["results"]:
        assert set(result) >= {"name", "value", "unit", "ratio", "target", "met", "detail"}
        assert math.isfinite(result["value"])
        assert result["met"] in (True, False, None)
        if result["target"] is not None:
            assert result["met"] is not None, result["name"]


def test_fault_free_run_makes_exactly_the_protocol_calls(report: dict[str, Any]) -> None:
    runs = _results(report, "calls")
    assert [(r["detail"]["tool_heavy"], r["detail"]["create_with_items"]) for r in runs] == [
        (False, False),
        (False, True),
        (True, False),
        (True, True),
    ]
    for calls in runs:
        detail = calls["detail"]
        assert detail["server_requests"] == detail["minimum_calls"] == detail["job_calls"]
        assert detail["migrated"] == detail["conversations"]
        assert detail["items_committed"] == detail["items"]
        assert calls["ratio"] == 1.0
        assert calls["met"] is True
    for empty_create, with_items in (runs[0:2], runs[2:4]):
        # The create that carries the first batch saves one call per conversation.
        saved = empty_create["detail"]["server_requests"] - with_items["detail"]["server_requests"]
        assert saved == with_items["detail"]["conversations"]
    # The tool-heavy corpus has pairs on both sides of a cut, parallel calls among them.
    tools = runs[2]["detail"]
    assert tools["split_pairs"] > 0 and tools["parallel_groups"] > 0
    assert tools["pairs"] * 2 > tools["items"] / 2


def test_throughput_figures_are_consistent(report: dict[str, Any]) -> None:
    results = _results(report, "throughput")
    runs = [r for r in results if r["name"].startswith("migrate run, concurrency")]
    bare = [r for r in results if r["name"].startswith("bare SDK loop")]
    assert runs and len(runs) == len(bare)
    for result in runs + bare:
        detail = result["detail"]
        # no call can beat the server's latency: at most concurrency / 50 ms
        assert 0 < result["value"] <= detail["ideal_calls_per_second"] * 1.05
        assert result["ratio"] == pytest.approx(result["value"] / detail["ideal_calls_per_second"])
        assert detail["calls"] == detail["conversations"] * 6
        assert detail["client_cpu_ms_per_call"] > 0
        assert detail["server_cpu_ms_per_call"] > 0
    assert any(r["name"].startswith("typed SDK methods") for r in results)
    assert any(r["name"].startswith("CPU limit of this machine") for r in results)


def test_rate_limited_run_fails_nothing_and_counts_its_429s(report: dict[str, Any]) -> None:
    # how close the rate came to the limit is a figure bench/ reports, not a test
    sustained, answers = _results(report, "rate_limit")
    detail = sustained["detail"]
    assert detail["failed_conversations"] == 0
    assert detail["sustained_commits"] >= 2
    assert sustained["ratio"] > 0
    assert answers["value"] == detail["rate_limited_429"]


def test_faults_leave_nothing_missing_or_duplicated(report: dict[str, Any]) -> None:
    outcome, extra = _results(report, "faults")
    detail = outcome["detail"]
    assert outcome["value"] == 0
    assert detail["items_committed_minus_planned"] == 0
    assert detail["migrated"] == detail["conversations"]
    assert detail["verify"]["checked"] == detail["conversations"]
    spent = extra["detail"]
    assert extra["value"] == spent["server_requests"] - spent["minimum_calls"]
    # every read and every 429 is a call beyond the protocol's minimum
    assert spent["reconciliation_reads"] + spent["rate_limited_429"] <= extra["value"]


def test_a_429_storm_fails_nothing_and_duplicates_nothing(report: dict[str, Any]) -> None:
    # the rate after the storm is a figure bench/ reports, not a test
    failed, duplicated, rate = _results(report, "storm")
    detail = failed["detail"]
    assert failed["value"] == 0 and detail["migrated"] == detail["conversations"]
    assert duplicated["value"] == 0
    assert duplicated["detail"]["items_committed_minus_planned"] == 0
    assert detail["neighbour_429"] > 0, "the neighbour never drained the limit"
    assert 0 < rate["detail"]["writes_after"] <= detail["job_requests"]
    assert rate["ratio"] > 0


def test_planning_reports_speed_and_memory(report: dict[str, Any]) -> None:
    results = _results(report, "planning")
    speeds = [r for r in results if r["name"].startswith("plan ")]
    memory = [r for r in results if r["name"].startswith("peak RSS")]
    reads = [r for r in results if r["name"].startswith("source read alone")]
    (counting,) = [r for r in results if r["name"].startswith("token counting cost")]
    assert len(speeds) == 4 and len(memory) == 2 and len(reads) == 2
    # the same plan with and without counting; the ratio is of their rates
    timing = counting["detail"]
    assert timing["tokens_counted"] > 0 and timing["seconds_without"] > 0
    assert counting["ratio"] == pytest.approx(timing["seconds_without"] / timing["seconds_with"])
    for result in speeds:
        assert result["value"] > 0
        assert result["detail"]["peak_rss_mb"] >= result["detail"]["peak_rss_mb_after_imports"]
    for result in memory:
        assert result["value"] > 10  # MiB: an interpreter with the package loaded
        assert result["ratio"] > 0.5
    for result in reads:
        assert result["ratio"] > 0


def test_disk_reports_every_file_of_the_job(report: dict[str, Any]) -> None:
    measured, packed = _results(report, "disk")
    detail = measured["detail"]
    assert detail["migrated"] == detail["conversations"]
    files = detail["files_bytes"]
    # One id map per table, CSV; no plan.jsonl without --write-plan.
    assert {"state.db", "conversations.csv", "items.csv"} <= set(files)
    assert "items.jsonl" not in files and "conversations.jsonl" not in files
    assert "plan.jsonl" not in detail["plan_files_bytes"]
    total = sum(files.values())
    assert measured["value"] == pytest.approx(total * 1e6 / detail["conversations"] / 1e9)
    # --compress: the same job with its report tables as .gz, and smaller.
    compressed = packed["detail"]["files_bytes"]
    assert packed["detail"]["migrated"] == detail["conversations"]
    assert {"conversations.csv.gz", "items.csv.gz"} <= set(compressed)
    assert "items.csv" not in compressed
    assert compressed["items.csv.gz"] < files["items.csv"]
    assert packed["ratio"] < 1


def test_scale_compares_every_size_with_the_smallest(report: dict[str, Any]) -> None:
    results = _results(report, "scale")
    *flat, end = results
    assert len(flat) == 6 and end["unit"] == "s"
    for result in flat:
        detail = result["detail"]
        assert detail["sizes"] == [400, 800, 1_600]
        values = detail["values"]
        assert all(value > 0 for value in values)
        assert detail["ratios"] == pytest.approx([value / values[0] for value in values])
        assert result["value"] == values[-1]
        assert result["met"] == (max(detail["ratios"]) <= 1.3)
    measured = end["detail"]["measured"]
    assert [figures["conversations"] for figures in measured] == [400, 800, 1_600]
    assert end["value"] == measured[-1]["report_s"]
    assert end["met"] == (end["value"] < 10)
