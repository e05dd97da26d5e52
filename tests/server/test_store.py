"""The SQLite store: persistence, atomic batches, order under concurrent writers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from sqlalchemy.exc import IntegrityError

from migrate.server import store as store_module
from migrate.server.store import ConversationStore, StoreError
from migrate.server.testing import ServerFactory
from migrate.server.validation import parse_items


def messages(label: str, count: int) -> list[dict[str, Any]]:
    raw = [{"type": "message", "role": "user", "content": f"{label}-{n}"} for n in range(count)]
    return parse_items(raw, min_items=0)


def text_of(item: Any) -> str:
    text: str = item.content[0].text
    return text


def texts(store: ConversationStore, conversation_id: str) -> list[str]:
    return [item["content"][0]["text"] for item in store.all_items(conversation_id)]


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    first = ConversationStore.from_path(path)
    record, created = first.create_conversation({"k": "v"}, messages("a", 2))
    first.add_items(record.id, messages("b", 1))
    first.close()

    again = ConversationStore.from_path(path)
    try:
        assert again.get_conversation(record.id) == record
        assert texts(again, record.id) == ["a-0", "a-1", "b-0"]
        assert [summary.item_count for summary in again.summaries()] == [3]
        assert [item.id for item in created] == [item["id"] for item in again.all_items(record.id)][
            :2
        ]
        assert json.loads(created[0].body_json)["content"][0]["text"] == "a-0"
    finally:
        again.close()


def test_a_failing_batch_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ConversationStore.from_path(tmp_path / "server.db")
    record, _ = store.create_conversation({}, messages("a", 1))
    taken = store.all_items(record.id)[0]["id"]
    minted = iter(["msg_fresh_1", taken])  # the second id collides: the insert must fail

    monkeypatch.setattr(store_module, "mint_id", lambda prefix, suffix=None: next(minted))
    with pytest.raises(IntegrityError, match="UNIQUE"):
        store.add_items(record.id, messages("b", 2))
    monkeypatch.undo()
    assert texts(store, record.id) == ["a-0"]
    store.add_items(record.id, messages("c", 1))
    assert texts(store, record.id) == ["a-0", "c-0"]
    store.close()


def test_a_failing_create_leaves_no_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConversationStore.from_path(tmp_path / "server.db")
    monkeypatch.setattr(store_module, "mint_id", lambda prefix, suffix=None: "same_id")
    with pytest.raises(IntegrityError, match="UNIQUE"):
        store.create_conversation({}, messages("a", 2))
    monkeypatch.undo()
    assert store.summaries() == []
    store.close()


def test_refuses_a_database_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    with pytest.raises(StoreError, match="other tables"):
        ConversationStore.from_path(path)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    ConversationStore.from_path(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        ConversationStore.from_path(path)


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just some text, long enough to not be a database header" * 20)
    with pytest.raises(StoreError, match=str(path)):
        ConversationStore.from_path(path)


def test_two_stores_on_one_file_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    stores = [ConversationStore.from_path(path) for _ in range(2)]
    record, _ = stores[0].create_conversation({}, [])
    errors: list[BaseException] = []

    def write(store: ConversationStore, label: str) -> None:
        try:
            for round_ in range(25):
                store.add_items(record.id, messages(f"{label}{round_}", 4))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(store, label))
        for store, label in zip(stores, "xy", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    landed = texts(stores[1], record.id)
    assert len(landed) == 200
    for start in range(0, 200, 4):
        label = landed[start].rsplit("-", 1)[0]
        assert landed[start : start + 4] == [f"{label}-{n}" for n in range(4)]
    for store in stores:
        store.close()


def test_concurrent_sdk_batches_land_whole_and_in_order(local_server: ServerFactory) -> None:
    base_url = local_server()

    async def scenario() -> tuple[list[str], list[list[str]]]:
        async with AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0) as client:
            conversation = await client.conversations.create()
            batches = [
                [{"type": "message", "role": "user", "content": f"b{b}-{n}"} for n in range(20)]
                for b in range(16)
            ]
            answers = await asyncio.gather(
                *(
                    client.conversations.items.create(conversation.id, items=batch)  # type: ignore[arg-type]
                    for batch in batches
                )
            )
            pages = client.conversations.items.list(conversation.id, order="asc", limit=100)
            listed = [text_of(item) async for item in pages]
            returned = [[text_of(item) for item in answer.data] for answer in answers]
            return listed, returned

    listed, returned = asyncio.run(scenario())
    assert len(listed) == 320
    assert returned == [[f"b{b}-{n}" for n in range(20)] for b in range(16)]
    for start in range(0, 320, 20):
        label = listed[start].split("-")[0]
        assert listed[start : start + 20] == [f"{label}-{n}" for n in range(20)]
