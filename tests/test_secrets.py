"""No message, log or file ever shows a password: a source URL's is masked wherever it goes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine

from migrate.cli import main
from migrate.errors import EXIT_OK, EXIT_USAGE, ConfigError, without_passwords
from migrate.state.store import StateStore
from tests.replay.helpers import POSTGRES, fresh_database

PASSWORD = "Pw-0f-the-source"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sql" / "generic.sql"


def test_invalid_source_options_do_not_show_the_password() -> None:
    runner = CliRunner()
    for arguments in (
        ["plan", f"mysql://user:{PASSWORD}@host/db", "--table", "t"],
        ["plan", f"mysql://user:{PASSWORD}@host/db", "--format", "chatgpt"],
        ["plan", f"postgresql://user:{PASSWORD}@127.0.0.1:1/db", "--preset", "langchain"],
    ):
        result = runner.invoke(main, arguments)
        assert result.exit_code == EXIT_USAGE, result.output
        assert PASSWORD not in result.output, result.output
        assert "user:***@" in result.output


def test_an_error_masks_a_password_set_after_it_was_raised() -> None:
    error = ConfigError(
        f"cannot open sqlite://u:{PASSWORD}@h/x", hint=f"check mysql://u:{PASSWORD}@h"
    )
    error.message = f"reading the source failed: mysql://a:{PASSWORD}@b/c"
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)
    assert (
        without_passwords("https://a:b@c:1/d and mysql://e@f/g")
        == "https://a:***@c:1/d and mysql://e@f/g"
    )


@pytest.fixture
def source_with_password() -> Iterator[str]:
    """A PostgreSQL database holding the generic sample (trust auth: any password works)."""
    for url in fresh_database(POSTGRES, "PostgreSQL on 127.0.0.1:5432"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(SAMPLE.read_text(encoding="utf-8"))
        engine.dispose()
        yield url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


@pytest.mark.postgres
def test_a_run_from_a_url_with_a_password_never_writes_it(
    tmp_path: Path, source_with_password: str
) -> None:
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        "[source]\n"
        'kind = "sql"\n'
        f'url = "{source_with_password}"\n'
        'table = "chat_messages"\n'
        'conversation_column = "conversation_id"\n'
        'order_columns = ["created_at", "id"]\n'
        'role_column = "role"\n'
        'content_column = "content"\n'
        'tool_calls_column = "tool_calls"\n'
        'tool_call_id_column = "tool_call_id"\n',
        encoding="utf-8",
    )
    job_dir = tmp_path / "job"
    log = tmp_path / "extra.log"
    runner = CliRunner()
    outputs = []
    for arguments in (
        ["plan", "--job-file", str(job_file), "-vv"],
        ["run", "--job-file", str(job_file), "--job-dir", str(job_dir), "-vv"],
        ["status", str(job_dir), "--json"],
        ["report", str(job_dir)],
        ["resume", str(job_dir), "-vv"],
    ):
        result = runner.invoke(main, [*arguments, "--log-file", str(log)])
        assert result.exit_code == EXIT_OK, result.output
        outputs.append(result.output)
    assert json.loads(outputs[2])["conversations"]["migrated"] == 2
    assert "postgres:***@" in outputs[2]
    for output in outputs:
        assert PASSWORD not in output
    written = [path for path in job_dir.rglob("*") if path.is_file()] + [log]
    assert any(path.name == "job.log" for path in written)
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path
    # the job row is plain JSON (plans are compressed, and hold items, not the source's URL)
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    job = store.job()
    store.close()
    assert PASSWORD not in json.dumps(job.config) + job.source
    assert "postgres:***@" in job.source
