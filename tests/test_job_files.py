"""`plan` and `report` write files of the same names with the same schema, atomically."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.jobs.files import JsonLinesFile, atomic_text, open_report, write_text

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "json"


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_plan_and_report_write_findings_and_errors_with_one_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    planned, ran = tmp_path / "plan", tmp_path / "run"
    assert runner.invoke(main, ["plan", str(SAMPLES), "--job-dir", str(planned)]).exit_code == 1
    assert runner.invoke(main, ["run", str(SAMPLES), "--job-dir", str(ran)]).exit_code == 1
    for name in ("findings.jsonl", "errors.jsonl"):
        from_plan, from_report = rows(planned / name), rows(ran / name)
        assert from_plan and len(from_plan) == len(from_report), name
        for one, other in zip(from_plan, from_report, strict=True):
            assert set(one) == set(other), name
            # the same record, but for what only a run knows
            assert {k: v for k, v in one.items() if k != "target_conversation_id"} == {
                k: v for k, v in other.items() if k != "target_conversation_id"
            }


def test_a_file_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    lines = JsonLinesFile(tmp_path / "rows.jsonl")
    lines.write({"n": 1})
    assert not (tmp_path / "rows.jsonl").exists()  # still being written
    lines.close(complete=False)
    assert list(tmp_path.iterdir()) == []
    lines = JsonLinesFile(tmp_path / "rows.jsonl")
    lines.write({"n": 2})
    lines.close()
    assert rows(tmp_path / "rows.jsonl") == [{"n": 2}]
    write_text(tmp_path / "summary.json", "{}\n")
    with pytest.raises(RuntimeError), atomic_text(tmp_path / "summary.json") as file:
        file.write('{"half": ')
        raise RuntimeError("the writer died")
    # the old file stands; no temporary file is left behind
    assert (tmp_path / "summary.json").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "summary.json"]


REPORT_TABLES = ("conversations.csv", "items.csv", "findings.jsonl", "errors.jsonl")


def table_rows(job_dir: Path, name: str) -> list[str]:
    with open_report(job_dir / name) as file:
        return file.read().splitlines()


def test_compress_writes_every_table_as_gz_and_readers_take_either_form(tmp_path: Path) -> None:
    runner = CliRunner()
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    assert runner.invoke(main, ["run", str(SAMPLES), "--job-dir", str(plain)]).exit_code == 1
    ran = runner.invoke(main, ["run", str(SAMPLES), "--job-dir", str(packed), "--compress"])
    assert ran.exit_code == 1, ran.output
    for name in REPORT_TABLES:
        assert not (packed / name).exists() and (packed / f"{name}.gz").exists(), name
        with gzip.open(packed / f"{name}.gz", "rt", encoding="utf-8") as file:
            assert file.read().splitlines()  # a real gzip file
        if name == "items.csv":
            # the same map, but for the ids each target minted
            assert len(table_rows(packed, name)) == len(table_rows(plain, name))
        elif name != "conversations.csv":
            assert len(table_rows(packed, name)) == len(table_rows(plain, name)) > 0
    assert f"{packed / 'errors.jsonl.gz'}" in ran.stdout
    assert (packed / "summary.json").exists() and (packed / "report.html").exists()
    # `report` and `resume` keep the job's choice unless told otherwise; one form at a time.
    assert runner.invoke(main, ["report", str(packed)]).exit_code == 0
    assert (packed / "items.csv.gz").exists() and not (packed / "items.csv").exists()
    assert runner.invoke(main, ["resume", str(packed), "--no-compress"]).exit_code == 1
    for name in REPORT_TABLES:
        assert (packed / name).exists() and not (packed / f"{name}.gz").exists(), name
    assert runner.invoke(main, ["report", str(packed)]).exit_code == 0
    assert (packed / "items.csv").exists() and not (packed / "items.csv.gz").exists()
    assert runner.invoke(main, ["report", str(plain), "--compress"]).exit_code == 0
    assert (plain / "items.csv.gz").exists() and not (plain / "items.csv").exists()


def test_plan_compress_writes_gz_and_a_compressed_plan_counts_as_a_plan(tmp_path: Path) -> None:
    runner = CliRunner()
    job_dir = tmp_path / "plan"
    arguments = ["plan", str(SAMPLES), "--job-dir", str(job_dir), "--write-plan", "--compress"]
    planned = runner.invoke(main, arguments)
    assert planned.exit_code == 1, planned.output
    names = ("plan.jsonl", "conversations.jsonl", "findings.jsonl", "errors.jsonl")
    for name in names:
        assert (job_dir / f"{name}.gz").exists() and not (job_dir / name).exists(), name
    assert "plan.jsonl.gz, conversations.jsonl.gz" in planned.stdout
    summary = json.loads((job_dir / "summary.json").read_text("utf-8"))
    assert len(table_rows(job_dir, "plan.jsonl")) == summary["api_calls"]
    assert len(table_rows(job_dir, "conversations.jsonl")) == summary["conversations"]["total"]
    (job_dir / "summary.json").unlink()
    again = runner.invoke(main, ["plan", str(SAMPLES), "--job-dir", str(job_dir)])
    assert again.exit_code == 2 and "already holds a plan" in again.stderr
    forced = runner.invoke(main, ["plan", str(SAMPLES), "--job-dir", str(job_dir), "--force"])
    assert forced.exit_code == 1
    # the plain plan replaced the compressed one: no stale `.gz` beside it
    assert not any(path.name.endswith(".gz") for path in job_dir.iterdir())


def json_keys(value: Any) -> set[str]:
    """Every key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value) | {key for child in value.values() for key in json_keys(child)}
    if isinstance(value, list):
        return {key for child in value for key in json_keys(child)}
    return set()


def test_every_report_file_names_ids_one_way_and_no_message_shows_none(tmp_path: Path) -> None:
    runner = CliRunner()
    planned, ran = tmp_path / "plan", tmp_path / "run"
    outputs = [
        runner.invoke(main, ["plan", str(SAMPLES), "--job-dir", str(planned), "--write-plan"]),
        runner.invoke(main, ["run", str(SAMPLES), "--job-dir", str(ran)]),
        runner.invoke(main, ["verify", str(ran)]),
        runner.invoke(main, ["status", str(ran)]),
    ]
    for result in outputs:
        assert "None" not in result.output, result.output
    for job_dir in (planned, ran):
        for path in job_dir.iterdir():
            if path.suffix == ".jsonl":
                keys = {key for row in rows(path) for key in json_keys(row)}
            elif path.suffix == ".csv":
                keys = set(path.read_text("utf-8").splitlines()[0].split(","))
            elif path.name == "summary.json":
                keys = json_keys(json.loads(path.read_text("utf-8")))
            else:
                continue
            if path.name == "plan.jsonl":
                keys = {key for row in rows(path) for key in row}  # the bodies are the API's
            assert "source_id" in keys or path.name == "summary.json", path.name
            # `conversation_id` meant the source id in some files and the new id in others
            assert "conversation_id" not in keys, path.name
    summary = json.loads((ran / "summary.json").read_text("utf-8"))
    examples = [e for row in summary["report"]["errors"] for e in row["examples"]]
    assert examples and all("source_id" in example for example in examples)
