"""`where` and `since` on SQL sources: whole conversations picked by a condition or a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import SourceOpenError, open_source
from adapters.model import SourceConversation
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


def read_ids(database: Database, **fields: object) -> dict[str, int]:
    """Conversation id -> number of entries, for the source with `fields`."""
    records = list(open_source(database.config(**fields)).read())
    return {r.id: len(r.entries) for r in records if isinstance(r, SourceConversation)}


def test_where_and_since_pick_whole_conversations(database: Database) -> None:
    table = chat_messages_table(database.metadata())
    rows = []
    for number, (conversation, stamp) in enumerate(
        [
            ("old", "2025-01-01 10:00:00"),
            ("old", "2025-01-01 10:01:00"),
            ("active", "2025-01-01 10:00:00"),
            ("active", "2025-03-02 08:00:00"),
            ("mobile", "2025-01-05 10:00:00"),
        ],
        start=1,
    ):
        channel = "mobile" if conversation == "mobile" else "web"
        rows.append(
            {
                "id": number,
                "conversation_id": conversation,
                "created_at": stamp,
                "role": "user",
                "content": f"message {number}",
                "channel": channel,
            }
        )
    database.insert(table, rows)
    everything = read_ids(database, **MAPPING)
    assert everything == {"active": 2, "mobile": 1, "old": 2}
    # The conversation is read whole: its old message comes along with the recent one.
    assert read_ids(database, **MAPPING, since=datetime(2025, 3, 1, tzinfo=UTC)) == {"active": 2}
    assert read_ids(database, **MAPPING, where="channel = 'mobile'") == {"mobile": 1}
    both = read_ids(database, **MAPPING, where="channel = 'web'", since=datetime(2025, 1, 2))
    assert both == {"active": 2}


def test_since_on_epoch_nanoseconds_of_the_llamaindex_preset(database: Database) -> None:
    database.run_script(SAMPLES / "llamaindex.sql")
    every = read_ids(database, preset="llamaindex")
    assert len(every) > 1
    # The sample's first key starts 2025-03-01 09:00 UTC; nothing in it is from 2030.
    assert read_ids(database, preset="llamaindex", since=datetime(2030, 1, 1)) == {}
    assert read_ids(database, preset="llamaindex", since=datetime(2020, 1, 1)) == every


def test_since_needs_a_timestamp_and_where_one_condition(database: Database) -> None:
    database.run_script(SAMPLES / "langchain.sql")
    with pytest.raises(SourceOpenError, match="timestamp column"):
        read_ids(database, preset="langchain", since=datetime(2025, 1, 1))
    with pytest.raises(SourceOpenError, match="one SQL condition"):
        read_ids(database, preset="langchain", where="1 = 1; DROP TABLE message_store")
