"""One error tree and one place for exit codes: the same failure gives the same code from every
verb, with one line on the terminal and the traceback only in the log (or with --debug)."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import migrate.errors as errors
from adapters import Source, SourceOpenError, open_source
from adapters.model import SourceRecord
from migrate.cli import main
from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, MigrateError
from migrate.server.errors import ApiError
from migrate.server.store import ItemNotFoundError, StoreError
from migrate.state.records import ClaimLostError

SAMPLE = Path(__file__).parent.parent / "samples" / "json" / "finetune.jsonl"
SOURCE_VERBS = ["plan", "run"]


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments))


def export_threads_arguments(tmp_path: Path) -> list[str]:
    return ["export-threads", "--thread", "thread_abc", "--out", str(tmp_path / "threads")]


def test_every_error_the_product_raises_is_in_one_tree() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, Exception)
    ]
    assert len(classes) >= 15
    for error in [*classes, ClaimLostError, ApiError, StoreError, ItemNotFoundError]:
        assert issubclass(error, MigrateError), error
    # Transient or terminal is a property of the class.
    assert errors.CallNotApplied.transient and errors.CallUnreachable.transient
    assert errors.CallAmbiguous.transient and errors.CallTimedOut.transient
    assert not errors.CallRejected.transient and not errors.CallFatal.transient
    assert errors.RetriesExhaustedError.transient and errors.TargetUnreachableError.transient
    assert not errors.ConfigError.transient
    assert errors.SourceError.exit_code == errors.TargetRefusedError.exit_code == EXIT_USAGE
    assert errors.SourceReadError.exit_code == errors.TargetUnreachableError.exit_code == 3


def test_an_error_carries_its_context() -> None:
    error = errors.ConversationError(
        "bad_part",
        "unknown part type",
        conversation_id="c1",
        location="chats.jsonl:12",
        batch=40,
        hint="drop it with --policy",
    )
    assert error.context == {
        "location": "chats.jsonl:12",
        "conversation_id": "c1",
        "batch": 40,
        "hint": "drop it with --policy",
    }
    assert str(error) == "unknown part type (drop it with --policy)"


@pytest.mark.parametrize("verb", SOURCE_VERBS)
def test_a_source_that_cannot_be_opened_exits_2_from_every_verb(tmp_path: Path, verb: str) -> None:
    missing = tmp_path / "nowhere.jsonl"
    result = invoke(verb, str(missing), "--job-dir", str(tmp_path / "job"))
    assert result.exit_code == EXIT_USAGE, result.output
    assert "nowhere.jsonl" in result.stderr
    assert "Traceback" not in result.output


def test_a_source_that_cannot_be_opened_exits_2_from_export_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise SourceOpenError("the server refused the credentials")

    monkeypatch.setattr("migrate.cli.threads.export_threads", refuse)
    result = invoke(*export_threads_arguments(tmp_path))
    assert result.exit_code == EXIT_USAGE, result.output
    assert "refused the credentials" in result.stderr
    assert "Traceback" not in result.output


class BreakingSource:
    """The real sample, which fails after two records (a disk or a database going away)."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner

    def describe(self) -> str:
        return self.inner.describe()

    def read(self) -> Iterator[SourceRecord]:
        yield from islice(self.inner.read(), 2)
        raise OSError("Input/output error")


@pytest.fixture
def breaking_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "migrate.plan.pipeline.open_source", lambda config: BreakingSource(open_source(config))
    )


@pytest.mark.parametrize("verb", SOURCE_VERBS)
def test_a_source_failing_mid_read_exits_3_from_every_verb(
    tmp_path: Path, verb: str, breaking_source: None
) -> None:
    result = invoke(verb, str(SAMPLE), "--job-dir", str(tmp_path / "job"))
    assert result.exit_code == EXIT_FAILED, result.output
    assert "reading the source failed after 2 records: OSError: Input/output error" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_a_source_failing_mid_read_exits_3_from_export_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.assistants.dump import ExportProgress

    def fail_midway(config: Any, out_dir: Path, progress: Any) -> Any:
        progress(ExportProgress(thread_id="thread_abc", status="written", done=1, total=2))
        raise SourceOpenError("the server went away")

    monkeypatch.setattr("migrate.cli.threads.export_threads", fail_midway)
    result = invoke(*export_threads_arguments(tmp_path))
    assert result.exit_code == EXIT_FAILED, result.output
    assert "the export stopped: the server went away" in result.stderr
    assert "Traceback" not in result.output


UNEXPECTED = {
    "plan": "migrate.cli.plan.plan_job",
    "run": "migrate.cli.run.run_job",
    "export-threads": "migrate.cli.threads.export_threads",
    "status": "migrate.cli.job.job_status",
    "export-responses": "migrate.cli.responses.export_chains",
}


def _arguments(verb: str, tmp_path: Path) -> list[str]:
    if verb == "export-threads":
        return export_threads_arguments(tmp_path)
    if verb == "status":
        return ["status", str(tmp_path)]
    if verb == "export-responses":
        ids = tmp_path / "ids.txt"
        ids.write_text("resp_abc\n")
        return [verb, "--response-ids-file", str(ids), "--out", str(tmp_path / "histories")]
    return [verb, str(SAMPLE), "--job-dir", str(tmp_path / "job")]


@pytest.mark.parametrize("verb", sorted(UNEXPECTED))
def test_an_unexpected_exception_exits_3_with_one_line_naming_the_log(
    tmp_path: Path, verb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    # By module object: `migrate.cli.plan` as a dotted name is the `plan` command, not its module.
    module, _, name = UNEXPECTED[verb].rpartition(".")
    monkeypatch.setattr(importlib.import_module(module), name, explode)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    result = invoke(*_arguments(verb, tmp_path))
    assert result.exit_code == EXIT_FAILED, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: unexpected RuntimeError: a bug (the traceback is in ")
    log = Path(re.search(r"the traceback is in (\S+);", lines[-1]).group(1))  # type: ignore[union-attr]
    assert "Traceback" in log.read_text() and "a bug" in log.read_text()

    with_debug = invoke(*_arguments(verb, tmp_path), "--debug")
    assert with_debug.exit_code == EXIT_FAILED
    assert "Traceback" in with_debug.stderr


def test_a_config_error_names_the_valid_keys_and_the_nearest(tmp_path: Path) -> None:
    result = invoke("plan", str(SAMPLE), "--policy", "reasonin=text", "--job-dir", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "unknown key `reasonin` (did you mean `reasoning`?)" in result.stderr
    assert "valid keys: " in result.stderr and "refusal" in result.stderr
    assert "pydantic" not in result.stderr and "None" not in result.stderr
    job_file = tmp_path / "job.toml"
    job_file.write_text(f'[source]\nkind = "json"\npath = "{SAMPLE}"\nformatt = "finetune"\n')
    from_file = invoke("plan", "--job-file", str(job_file), "--job-dir", str(tmp_path / "p"))
    assert from_file.exit_code == EXIT_USAGE
    assert "unknown key `source.formatt` (did you mean `format`?)" in from_file.stderr
    assert "errors.pydantic.dev" not in from_file.stderr


def test_a_wrong_value_says_what_was_given() -> None:
    result = invoke("plan", str(SAMPLE), "--policy", "reasoning=bogus")
    assert result.exit_code == EXIT_USAGE
    assert "`reasoning`: Input should be 'text', 'drop', 'fail' or 'keep' (got 'bogus')" in (
        result.stderr
    )


def test_success_is_exit_0_through_the_same_place(tmp_path: Path) -> None:
    assert invoke("plan", str(SAMPLE), "--job-dir", str(tmp_path)).exit_code == EXIT_OK
