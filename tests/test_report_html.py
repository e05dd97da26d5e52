"""`report.html` for a plan: every number it shows comes from `summary.json`, and it opens in a
browser with no error and no request to the network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import main
from tests.htmlreport import check_numbers, open_in_chromium

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _plan(job_dir: Path, *extra: str) -> str:
    result = CliRunner().invoke(main, ["plan", str(SAMPLES), "--job-dir", str(job_dir), *extra])
    assert result.exit_code == 1, result.output  # the samples hold broken records on purpose
    return result.stdout


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_plan_report_shows_only_numbers_from_its_summary(tmp_path: Path) -> None:
    stdout = _plan(tmp_path / "plan", "--rate-per-minute", "60", "--write-plan")
    summary, numbers = check_numbers(tmp_path / "plan")
    counts, report = summary["conversations"], summary["report"]
    assert counts["total"] == counts["planned"] + counts["failed"] + counts["skipped"]
    shown = {path for path, _, _ in numbers}
    for path in ("conversations.total", "conversations.failed", "api_calls", "items.planned"):
        assert path in shown
    # errors by code account for every failed conversation, findings for every finding
    assert sum(row["conversations"] for row in report["errors"]) == counts["failed"]
    assert {row["code"]: row["count"] for row in report["findings"]} == summary["findings"]
    errors = _lines(tmp_path / "plan" / "errors.jsonl")
    for row in report["errors"]:
        assert row["count"] == sum(error["code"] == row["code"] for error in errors)
        assert row["meaning"] != "Not documented."
        assert row["examples"] and all(e["location"] for e in row["examples"])
    estimate = report["estimate"]
    assert estimate["rate_per_minute"] == 60
    assert estimate["calls"] == summary["api_calls"]
    assert estimate["minutes"] == round(summary["api_calls"] / 60, 1)
    assert estimate["plan_bytes"] == (tmp_path / "plan" / "plan.jsonl").stat().st_size
    rows = _lines(tmp_path / "plan" / "conversations.jsonl")
    most = sorted((row.get("items", 0) for row in rows), reverse=True)[: len(report["largest"])]
    assert [row["items"] for row in report["largest"]] == most
    # every failed conversation and every finding code has a conversation in the viewer
    page = (tmp_path / "plan" / "report.html").read_text("utf-8")
    assert report["samples"] == page.count('<details data-free=""')
    for row in report["errors"] + report["findings"]:
        assert f'<span class="tag{" err" if row in report["errors"] else ""}">{row["code"]}' in page
    # the terminal shows the same top codes and where the page is
    top = report["errors"][0]
    assert f"{top['code']:28} {top['conversations']} conversation(s)" in stdout
    assert f"{tmp_path / 'plan' / 'report.html'}" in stdout


def test_the_default_rate_is_stated(tmp_path: Path) -> None:
    _plan(tmp_path / "plan")
    summary, _ = check_numbers(tmp_path / "plan")
    assert summary["report"]["estimate"]["rate_per_minute"] == 300
    help_text = CliRunner().invoke(main, ["plan", "--help"]).output
    assert "--rate-per-minute" in help_text and "default: 300" in help_text


def test_a_plan_report_opens_in_chromium_without_errors_or_network(tmp_path: Path) -> None:
    _plan(tmp_path / "plan")
    seen = open_in_chromium(tmp_path / "plan" / "report.html", tmp_path / "plan.png")
    assert seen.errors == []
    page_url = (tmp_path / "plan" / "report.html").resolve().as_uri()
    assert seen.requests == [page_url]
    assert (tmp_path / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plan.png").stat().st_size > 10_000  # a rendered page, not a blank one


def test_the_check_catches_a_number_that_differs_from_the_summary(tmp_path: Path) -> None:
    _plan(tmp_path / "plan")
    path = tmp_path / "plan" / "summary.json"
    summary = json.loads(path.read_text("utf-8"))
    summary["conversations"]["skipped"] += 1
    path.write_text(json.dumps(summary), "utf-8")
    with pytest.raises(AssertionError, match=r"conversations\.skipped"):
        check_numbers(tmp_path / "plan")
