"""Azure threads as a source: `export-threads --azure-endpoint --all-threads` against the local
server's Azure flavour (threads seeded from the samples), then `run` on the export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.jobs.models import JobRef
from migrate.jobs.status import job_status
from migrate.server.testing import ServerFactory

SAMPLES = Path(__file__).parent.parent / "samples" / "assistants"
THREADS = sorted(p.stem for p in SAMPLES.glob("thread_*.json"))


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[ServerFactory]:
    (tmp_path / "servers").mkdir()
    with ServerFactory(tmp_path / "servers") as factory:
        yield factory


@pytest.fixture(autouse=True)
def azure_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")


@pytest.mark.parametrize("prefix", ["", "/api/projects/rehearsal"])
def test_all_threads_are_exported_then_run_lands_them(
    prefix: str, tmp_path: Path, local_server: ServerFactory
) -> None:
    endpoint = local_server(flavour="azure", api_key="azure-key", threads_dir=SAMPLES) + prefix
    out = tmp_path / "export"
    arguments = ["export-threads", "--azure-endpoint", endpoint, "--all-threads", "--out", str(out)]
    result = CliRunner().invoke(main, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["total"] == summary["written"] == len(THREADS)
    assert sorted(p.stem for p in out.glob("*.json")) == THREADS
    for thread_id in THREADS:
        exported = json.loads((out / f"{thread_id}.json").read_text(encoding="utf-8"))
        sample = json.loads((SAMPLES / f"{thread_id}.json").read_text(encoding="utf-8"))
        assert [m["id"] for m in exported["messages"]] == [m["id"] for m in sample["messages"]]
    # Resumable: a second export writes nothing again.
    again = CliRunner().invoke(main, [*arguments, "--json"])
    assert json.loads(again.stdout)["skipped"] == len(THREADS)
    job_dir = tmp_path / "job"
    run = CliRunner().invoke(
        main, ["run", str(out), "--job-dir", str(job_dir), "--flavour", "azure"]
    )
    assert run.exit_code == 0, run.output
    status = job_status(JobRef(job_dir=job_dir))
    # The samples hold one thread with nothing to migrate: skipped, as from any export.
    counts = status.conversations
    assert (counts.migrated, counts.skipped, counts.failed) == (len(THREADS) - 1, 1, 0)
    assert status.possible_orphans == 0
    verify = CliRunner().invoke(main, ["verify", str(job_dir)])
    assert verify.exit_code == 0, verify.output


def test_a_base_url_query_is_never_glued_to_the_path(
    tmp_path: Path, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "azure-key")
    root = local_server(flavour="azure", api_key="azure-key", threads_dir=SAMPLES)
    base_url = f"{root}/openai?api-version=2024-05-01-preview"
    out = tmp_path / "export"
    result = CliRunner().invoke(
        main, ["export-threads", "--base-url", base_url, "--thread", THREADS[0], "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / f"{THREADS[0]}.json").exists()


def test_threads_need_an_api_version_and_a_key(local_server: ServerFactory) -> None:
    root = local_server(flavour="azure", api_key="azure-key", threads_dir=SAMPLES)
    key = {"api-key": "azure-key"}
    with httpx2.Client(base_url=root) as http:
        missing = http.get("/openai/threads", headers=key)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
        unauthorised = http.get("/openai/threads", params={"api-version": "2024-05-01-preview"})
        assert unauthorised.status_code == 401
        listed = http.get(
            "/openai/threads", params={"api-version": "2024-05-01-preview", "limit": 2}, headers=key
        )
        assert listed.status_code == 200
        page = listed.json()
        assert len(page["data"]) == 2 and page["has_more"] is True


def test_a_wrong_key_is_refused_with_azure_s_401(
    tmp_path: Path, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = local_server(flavour="azure", api_key="azure-key", threads_dir=SAMPLES)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong")
    result = CliRunner().invoke(
        main,
        ["export-threads", "--azure-endpoint", root, "--all-threads", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code != 0
    assert "refused the credentials" in result.stderr
    assert "wrong" not in result.stderr
