"""`plan` and `report` write files of the same names with the same schema, atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.jobs.files import JsonLinesFile, atomic_text, write_text

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
