"""The COUNT a plan's progress bar takes its total from: the conversations a read yields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from adapters import open_source
from adapters.model import SourceConversation
from adapters.sql.tables import SqlTableSource
from migrate.cli import main
from migrate.cli.render import ProgressBars
from migrate.jobs.models import ProgressUpdate
from migrate.plan.pipeline import expected_conversations
from tests.adapters.sqlhelpers import (
    SAMPLES,
    Database,
    chat_messages_table,
    database,
    mariadb_database,
    postgres_schema,
)
from tests.adapters.test_sql_tables import MAPPING

__all__ = ["database", "mariadb_database", "postgres_schema"]


def test_the_count_is_the_number_of_conversations_read_with_where_and_since(
    database: Database,
) -> None:
    table = chat_messages_table(database.metadata())
    stamps = ["2025-01-01 10:00:00", "2025-03-02 08:00:00"]
    database.insert(
        table,
        [
            {
                "id": number,
                "conversation_id": f"c{number // 3}",
                "created_at": stamps[number % 2],
                "role": "user",
                "content": f"message {number}",
                "channel": "mobile" if number % 3 == 0 else "web",
            }
            for number in range(1, 31)
        ],
    )
    for fields in (
        {},
        {"where": "channel = 'mobile'"},
        {"since": datetime(2025, 3, 1, tzinfo=UTC)},
        {"where": "id < 7", "since": datetime(2025, 3, 1, tzinfo=UTC)},
    ):
        source = open_source(database.config(**MAPPING, **fields))
        assert isinstance(source, SqlTableSource)
        read = [r for r in source.read() if isinstance(r, SourceConversation)]
        assert source.count_conversations() == len(read) > 0, fields


def test_plan_of_a_sql_source_shows_a_total_and_a_percentage(
    database: Database, tmp_path: Path
) -> None:
    if database.kind != "sqlite":
        return  # the CLI path is the same on every engine; the count is checked above
    database.run_script(SAMPLES / "langchain.sql")
    result = CliRunner().invoke(
        main,
        [
            "plan",
            database.url,
            "--preset",
            "langchain",
            "--job-dir",
            str(tmp_path / "plan"),
            "--progress",
        ],
    )
    assert result.exit_code == 0, result.output
    source = open_source(database.config(preset="langchain"))
    assert isinstance(source, SqlTableSource)
    count = source.count_conversations()
    assert count > 0
    assert "planning: 100%" in result.stderr and f"{count}/{count}" in result.stderr


def test_a_run_bar_has_the_total_before_planning_is_complete(database: Database) -> None:
    if database.kind != "sqlite":
        return
    database.run_script(SAMPLES / "langchain.sql")
    config = database.config(preset="langchain")
    source = open_source(config)
    assert isinstance(source, SqlTableSource)
    count = source.count_conversations()
    assert expected_conversations(config) == count > 1
    assert expected_conversations(config, limit=1) == 1
    assert expected_conversations(config, ids=count + 5) == count
    bars = ProgressBars(expected=count)
    with bars:
        bars.update(ProgressUpdate(event="progress", conversations_known=1, conversations_done=0))
        assert bars.conversations is not None and bars.conversations.total == count
        done = ProgressUpdate(event="progress", conversations_known=count, planning_complete=True)
        bars.update(done)
        assert bars.conversations.total == count
