"""The live Assistants reader and `export_threads`: vcrpy cassettes built from real recorded
traffic, plus a small Assistants-compatible server (an httpx2 transport) for paging, file names
and failures the recordings do not cover."""

from __future__ import annotations

import json
import re
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import openai
import pytest
import sqlalchemy
import vcr
from click.testing import CliRunner

from adapters import SourceOpenError, open_source
from adapters.assistants.dump import export_threads, thread_file
from adapters.assistants.live import AssistantsLiveSource
from adapters.config import AssistantsLiveSourceConfig
from adapters.json.threads import read_export
from adapters.model import Message, SourceConversation, SourceFailure, TextPart
from migrate.cli import main
from migrate.plan.planner import plan_conversation
from migrate.transform.policy import Policy
from tests.adapters.sqlhelpers import postgres_schema

__all__ = ["postgres_schema"]  # a fixture

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "tests" / "cassettes" / "assistants"
SAMPLES = ROOT / "samples" / "assistants"
BASE_URL = "https://api.openai.com/v1"
RECORDED_THREADS = {
    "function_tools": ["thread_iPTdbXGcxD5XNzfCaYWFJylc"],
    "image_detail": ["thread_ru4jnkFhulNNG5c2ccPiprAz"],
    "messages_with_roles": ["thread_NUrWJ6JJC35TsXsYa7jm7JgC"],
    "basic_message_operations": ["thread_ohNJmn4u7fJZkzneQRbMe2KZ"],
    "basic_thread_operations": ["thread_AHqXohYpLueVwYQ23H8ZIaGO"],
}


def replay(name: str) -> Any:
    """Replay a cassette strictly: unknown requests fail, matching method, path, query, body."""
    return vcr.use_cassette(
        str(CASSETTES / f"{name}.yaml"),
        record_mode="none",
        match_on=["method", "path", "query", "body"],
    )


@pytest.fixture
def sdk() -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0)
    yield client
    client.close()


def live(client: openai.OpenAI, *thread_ids: str, **options: Any) -> AssistantsLiveSource:
    config = AssistantsLiveSourceConfig(base_url=BASE_URL, thread_ids=thread_ids, **options)
    return AssistantsLiveSource(config, client=client)


def only_conversations(records: list[Any]) -> list[SourceConversation]:
    assert all(isinstance(r, SourceConversation) for r in records), records
    return records


def comparable(conversation: SourceConversation) -> dict[str, Any]:
    return conversation.model_dump(exclude={"location"})


# --- real recordings -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RECORDED_THREADS))
def test_live_read_of_recorded_threads_equals_the_export_read(
    name: str, sdk: openai.OpenAI, tmp_path: Path, policy: Policy
) -> None:
    thread_ids = RECORDED_THREADS[name]
    with replay(name) as cassette:
        live_records = only_conversations(list(live(sdk, *thread_ids).read()))
        assert cassette.all_played
    with replay(name) as cassette:
        summary = export_threads(
            AssistantsLiveSourceConfig(base_url=BASE_URL, thread_ids=tuple(thread_ids)),
            tmp_path,
            client=sdk,
        )
        assert cassette.all_played
    assert (summary.written, summary.failed) == (len(thread_ids), 0)
    exported = only_conversations(list(read_export(tmp_path)))
    assert [comparable(c) for c in exported] == [comparable(c) for c in live_records]
    for live_conversation, export_conversation in zip(live_records, exported, strict=True):
        assert export_conversation.location == str(thread_file(tmp_path, live_conversation.id))
        live_plan = plan_conversation(live_conversation, policy)
        export_plan = plan_conversation(export_conversation, policy)
        assert live_plan.items == export_plan.items
        assert live_plan.fingerprint == export_plan.fingerprint
        # every recorded message, image and function call is in the plan, in source order
        entries = live_conversation.entries
        assert [p.entry_index for p in live_plan.items] == sorted(
            p.entry_index for p in live_plan.items
        )
        assert {p.entry_index for p in live_plan.items} == set(range(len(entries)))
        images = [
            p for e in entries if isinstance(e, Message) for p in e.parts if p.type == "image"
        ]
        sent_images = [
            part
            for p in live_plan.items
            for part in p.item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "input_image"
        ]
        assert len(sent_images) == len(images)
        # nothing in these threads needs converting; messages' own metadata and their
        # timestamps stay in the report
        with_metadata = [
            e for e in entries if isinstance(e, Message) and e.metadata.get("metadata")
        ]
        assert [(f.code, f.source_id) for f in live_plan.findings] == [
            ("unmapped_field", e.source_id) for e in with_metadata
        ] + [("item_timestamps_in_report", None)] * any(e.created_at for e in entries)


def test_recorded_function_run_lands_call_output_then_answer(sdk: openai.OpenAI) -> None:
    with replay("function_tools"):
        (conversation,) = only_conversations(
            list(live(sdk, "thread_iPTdbXGcxD5XNzfCaYWFJylc").read())
        )
    assert [(e.kind, e.source_id) for e in conversation.entries] == [
        ("message", "msg_AYPSKBx86JeEfRInBNAvsLDg"),
        ("tool_call", "call_b9LqseCoPpctoIx71RVNZ1nB"),
        ("tool_result", "call_b9LqseCoPpctoIx71RVNZ1nB"),
        ("message", "msg_yteWSOVj6MVUcGowxpuQ9eur"),
    ]
    assert conversation.metadata["assistant_id"] == "asst_LtiaO4m2KzcEDhNxZLOWffZY"
    assert conversation.metadata["runs"][0]["id"] == "run_VSZ30Gv0cSXNu4f67kzJ8NyA"


def test_without_run_steps_no_runs_are_requested(sdk: openai.OpenAI) -> None:
    with replay("function_tools") as cassette:
        records = list(live(sdk, "thread_iPTdbXGcxD5XNzfCaYWFJylc", include_run_steps=False).read())
        assert cassette.play_count == 2  # the thread and its messages
    (conversation,) = only_conversations(records)
    assert [e.kind for e in conversation.entries] == ["message", "message"]


def test_recorded_server_error_fails_one_thread_and_the_rest_is_read(sdk: openai.OpenAI) -> None:
    with replay("ruby_threads"):
        records = list(
            live(
                sdk,
                "thread_XaNJDdLqZ9LrOopr7AkBNlcu",
                "thread_uJfx6VB7s6v33G7Mq9374bqN",
                "thread_i3Hs96sQAsLBfOTU1Rl6137V",
            ).read()
        )
    empty_v1, failure, empty_v2 = records
    assert isinstance(empty_v1, SourceConversation) and empty_v1.entries == []
    assert empty_v1.metadata == {"modified": "True"}  # a v1 thread: no tool_resources at all
    assert isinstance(empty_v2, SourceConversation) and empty_v2.metadata == {"modified": "true"}
    assert isinstance(failure, SourceFailure)
    assert failure.conversation_id == "thread_uJfx6VB7s6v33G7Mq9374bqN"
    assert failure.code == "thread_fetch_failed"
    assert "HTTP 400" in failure.message and "metadata.modified" in failure.message


def test_deprecation_warning_is_silenced_only_around_the_reader() -> None:
    server = AssistantsServer([sample("thread_Em9tY0tHr3aD5nQ7wE1rT4yU")])
    before = list(warnings.filters)
    with server.client() as client:
        # pytest turns warnings into errors here: the reader must silence its own
        list(live(client, "thread_Em9tY0tHr3aD5nQ7wE1rT4yU").read())
        assert warnings.filters == before
        with pytest.warns(DeprecationWarning, match="Assistants API is deprecated"):
            client.beta.threads.retrieve("thread_Em9tY0tHr3aD5nQ7wE1rT4yU")


def test_cassettes_hold_no_secrets() -> None:
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8").lower()
        for secret in (
            "authorization",
            "openai-organization",
            "openai-project",
            "cookie",
            "bearer",
        ):
            assert secret not in text, (path.name, secret)


def test_cassettes_are_what_the_builder_makes_from_the_recordings(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_cassettes", CASSETTES / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(tmp_path)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert built
    for relative in built:
        committed = CASSETTES / relative
        assert committed.read_bytes() == (tmp_path / relative).read_bytes(), relative


# --- export_threads ------------------------------------------------------------------------


def test_export_resumes_skipping_complete_files_and_redoing_broken_ones(
    sdk: openai.OpenAI, tmp_path: Path
) -> None:
    thread = "thread_NUrWJ6JJC35TsXsYa7jm7JgC"
    config = AssistantsLiveSourceConfig(base_url=BASE_URL, thread_ids=(thread,))
    with replay("messages_with_roles"):
        first = export_threads(config, tmp_path, client=sdk)
    assert (first.written, first.skipped) == (1, 0)
    exported = thread_file(tmp_path, thread).read_bytes()
    assert list(tmp_path.iterdir()) == [thread_file(tmp_path, thread)]  # no temp files left
    with replay("messages_with_roles") as cassette:
        second = export_threads(config, tmp_path, client=sdk)
        assert cassette.play_count == 0
    assert (second.written, second.skipped) == (0, 1)
    thread_file(tmp_path, thread).write_bytes(exported[: len(exported) // 2])
    events: list[str] = []
    with replay("messages_with_roles"):
        third = export_threads(config, tmp_path, lambda e: events.append(e.status), client=sdk)
    assert (third.written, third.skipped) == (1, 0) and events == ["written"]
    assert thread_file(tmp_path, thread).read_bytes() == exported


def test_export_threads_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    ids = tmp_path / "ids.txt"
    ids.write_text(
        "# threads from the app database\n"
        "thread_XaNJDdLqZ9LrOopr7AkBNlcu\n\n"
        "thread_uJfx6VB7s6v33G7Mq9374bqN  # broken\n"
        "thread_XaNJDdLqZ9LrOopr7AkBNlcu\n",
        encoding="utf-8",
    )
    out = tmp_path / "exports"
    args = ["export-threads", "--base-url", BASE_URL, "--thread-ids-file", str(ids)]
    with replay("ruby_threads"):
        result = CliRunner().invoke(
            main,
            [*args, "--out", str(out), "--thread", "thread_i3Hs96sQAsLBfOTU1Rl6137V", "--json"],
        )
    assert result.exit_code == 1, result.output  # partial: one thread failed
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["written"], summary["failed"]) == (3, 2, 1)
    assert "failed: thread thread_uJfx6VB7s6v33G7Mq9374bqN: HTTP 400" in result.stderr
    assert "sk-secret-value" not in result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "thread_XaNJDdLqZ9LrOopr7AkBNlcu.json",
        "thread_i3Hs96sQAsLBfOTU1Rl6137V.json",
    ]
    with replay("ruby_threads"):
        again = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert again.exit_code == 1
    assert again.stdout.strip().startswith("2 threads: 0 written, 1 already exported, 1 failed")


def test_export_threads_command_needs_ids(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export-threads", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "give thread ids" in result.stderr


def test_missing_api_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    source = open_source(AssistantsLiveSourceConfig(thread_ids=("thread_1",)))
    with pytest.raises(SourceOpenError, match="OPENAI_API_KEY is not set"):
        list(source.read())


# --- a local Assistants-compatible server --------------------------------------------------


class AssistantsServer:
    """Serves canonical export documents the way the Assistants API lists them."""

    def __init__(self, documents: list[dict[str, Any]], files: dict[str, Any] | None = None):
        self.threads = {d["thread"]["id"]: d for d in documents}
        self.files = files or {}
        self.requests: list[str] = []

    def client(self, api_key: str = "sk-good") -> openai.OpenAI:
        transport = httpx2.MockTransport(self.handle)
        return openai.OpenAI(
            api_key=api_key,
            base_url="http://assistants.test/v1",
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=transport),
        )

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if request.headers.get("authorization") != "Bearer sk-good":
            return self.error(401, "Incorrect API key provided")
        path = request.url.path.removeprefix("/v1")
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if match := re.fullmatch(r"/files/([^/]+)", path):
            found = self.files.get(match[1])
            return httpx2.Response(200, json=found) if found else self.error(404, "No such File")
        match = re.fullmatch(r"/threads/([^/]+)(?:/(messages|runs)(?:/([^/]+)/steps)?)?", path)
        if not match or match[1] not in self.threads:
            return self.error(404, "No thread found")
        document = self.threads[match[1]]
        if match[3]:
            objects = [s for s in document["run_steps"] if s["run_id"] == match[3]]
        elif match[2]:
            objects = document[match[2]]
        else:
            return httpx2.Response(200, json=document["thread"])
        return httpx2.Response(200, json=self.page(objects, query))

    @staticmethod
    def page(objects: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
        ordered = objects if query.get("order") == "asc" else list(reversed(objects))
        start = 0
        if "after" in query:
            start = [o["id"] for o in ordered].index(query["after"]) + 1
        data = ordered[start : start + int(query.get("limit", "20"))]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + len(data) < len(ordered),
        }

    @staticmethod
    def error(status: int, message: str) -> httpx2.Response:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None}}
        return httpx2.Response(status, json=body)


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    return document


def long_thread(count: int) -> dict[str, Any]:
    thread_id = "thread_long"
    return {
        "thread": {"id": thread_id, "object": "thread", "created_at": 1, "metadata": {}},
        "messages": [
            {
                "id": f"msg_{i:04d}",
                "object": "thread.message",
                "thread_id": thread_id,
                "created_at": 100 + i // 3,  # three messages per second: ties everywhere
                "role": "user" if i % 2 == 0 else "assistant",
                "content": [{"type": "text", "text": {"value": f"message {i}", "annotations": []}}],
            }
            for i in range(count)
        ],
        "runs": [],
        "run_steps": [],
    }


def test_messages_are_paged_oldest_first_through_auto_pagination() -> None:
    server = AssistantsServer([long_thread(230)])
    with server.client() as client:
        (conversation,) = only_conversations(list(live(client, "thread_long").read()))
    got = [
        p.text
        for e in conversation.entries
        if isinstance(e, Message)
        for p in e.parts
        if isinstance(p, TextPart)
    ]
    assert got == [f"message {i}" for i in range(230)]
    message_pages = [r for r in server.requests if "/messages" in r]
    assert len(message_pages) == 3
    assert all("order=asc" in r and "limit=100" in r for r in message_pages)
    assert "after=msg_0099" in message_pages[1] and "after=msg_0199" in message_pages[2]


def test_sample_thread_round_trips_through_a_server_and_export(
    tmp_path: Path, policy: Policy
) -> None:
    name = "thread_9bQ2mVtX4aLpR7cN1eHwZs3K"
    server = AssistantsServer([sample(name)])
    config = AssistantsLiveSourceConfig(thread_ids=(name,))
    with server.client() as client:
        summary = export_threads(config, tmp_path, client=client)
    assert summary.written == 1
    assert json.loads(thread_file(tmp_path, name).read_text("utf-8")) == sample(name)
    (original,) = only_conversations(list(read_export(SAMPLES / f"{name}.json")))
    (exported,) = only_conversations(list(read_export(tmp_path)))
    assert comparable(exported) == comparable(original)
    assert plan_conversation(exported, policy).items == plan_conversation(original, policy).items


INVALID_IDS = (".hidden_thread", "..", "../threads", "thread/x", "")


def test_invalid_thread_ids_are_counted_errors_and_never_file_names(tmp_path: Path) -> None:
    name = "thread_9bQ2mVtX4aLpR7cN1eHwZs3K"
    hidden = json.loads(json.dumps(sample(name)))
    hidden["thread"]["id"] = ".hidden_thread"
    server = AssistantsServer([sample(name), hidden])
    config = AssistantsLiveSourceConfig(thread_ids=(*INVALID_IDS, name))
    out_dir = tmp_path / "export"
    with server.client() as client:
        summary = export_threads(config, out_dir, client=client)
    assert (summary.written, summary.skipped, summary.failed) == (1, 0, len(INVALID_IDS))
    assert summary.total == summary.written + summary.skipped + summary.failed
    assert [f.code for f in summary.failures] == ["invalid_thread_id"] * len(INVALID_IDS)
    assert [f.conversation_id for f in summary.failures] == list(INVALID_IDS)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["export", f"{name}.json"]
    assert all(name in request for request in server.requests), server.requests
    (exported,) = only_conversations(list(read_export(out_dir)))
    assert exported.id == name
    with server.client() as client:
        records = list(live(client, *INVALID_IDS, name).read())
    assert [r.code for r in records[:-1] if isinstance(r, SourceFailure)] == [
        "invalid_thread_id"
    ] * len(INVALID_IDS)
    assert isinstance(records[-1], SourceConversation)


def test_file_names_are_resolved_when_allowed(tmp_path: Path, policy: Policy) -> None:
    name = "thread_9bQ2mVtX4aLpR7cN1eHwZs3K"
    guide: dict[str, Any] = {
        "id": "file-Gu1deLs8Bn3Mk5Pq7Rt9",
        "object": "file",
        "bytes": 48213,
        "created_at": 1735732000,
        "filename": "lisbon_guide.pdf",
        "purpose": "assistants",
    }
    server = AssistantsServer([sample(name)], files={guide["id"]: guide})
    config = AssistantsLiveSourceConfig(thread_ids=(name,), resolve_filenames=True)
    with server.client() as client:
        export_threads(config, tmp_path, client=client)
    document = json.loads(thread_file(tmp_path, name).read_text("utf-8"))
    assert document["files"] == [guide]  # the chart and the budget file are gone: no name
    assert sum("/files/" in r for r in server.requests) == 3
    (conversation,) = only_conversations(list(read_export(tmp_path)))
    citations = [
        a
        for e in conversation.entries
        if isinstance(e, Message)
        for p in e.parts
        if isinstance(p, TextPart)
        for a in p.annotations
        if a.kind == "file_citation"
    ]
    assert [a.filename for a in citations] == ["lisbon_guide.pdf", "lisbon_guide.pdf"]
    plan = plan_conversation(conversation, policy)
    annotations = [
        a
        for p in plan.items
        for part in p.item.get("content") or []
        if isinstance(part, dict)
        for a in part.get("annotations") or []
        if a["type"] == "file_citation"
    ]
    assert [a["filename"] for a in annotations] == ["lisbon_guide.pdf", "lisbon_guide.pdf"]
    assert not [f for f in plan.findings if f.code == "annotation_dropped"]


def test_unknown_thread_fails_alone_and_a_refused_key_stops_the_read() -> None:
    server = AssistantsServer([sample("thread_Em9tY0tHr3aD5nQ7wE1rT4yU")])
    with server.client() as client:
        records = list(live(client, "thread_missing", "thread_Em9tY0tHr3aD5nQ7wE1rT4yU").read())
    assert isinstance(records[0], SourceFailure) and records[0].code == "thread_not_found"
    assert isinstance(records[1], SourceConversation)
    with server.client(api_key="sk-bad") as client, pytest.raises(SourceOpenError, match="401"):
        list(live(client, "thread_Em9tY0tHr3aD5nQ7wE1rT4yU").read())


# --- thread ids ----------------------------------------------------------------------------


def test_thread_ids_from_arguments_file_and_sql_in_order_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE chats (id INTEGER PRIMARY KEY, openai_thread TEXT)")
        connection.executemany(
            "INSERT INTO chats (openai_thread) VALUES (?)",
            [("thread_c",), (None,), ("thread_a",), ("thread_d",)],
        )
    connection.close()
    ids = tmp_path / "ids.txt"
    ids.write_text("thread_b\n# comment\nthread_a\n", encoding="utf-8")
    monkeypatch.setenv("APP_DB_URL", f"sqlite:///{database}")
    source = AssistantsLiveSource(
        AssistantsLiveSourceConfig(
            thread_ids=("thread_a",),
            thread_ids_file=ids,
            thread_ids_query="SELECT openai_thread FROM chats ORDER BY id",
            thread_ids_url_env="APP_DB_URL",
        )
    )
    assert source.thread_ids() == ["thread_a", "thread_b", "thread_c", "thread_d"]
    assert "APP_DB_URL" not in source.describe() and "app.db" not in source.describe()


def test_a_failing_id_query_is_a_clear_error_without_password() -> None:
    missing_table = AssistantsLiveSource(
        AssistantsLiveSourceConfig(
            thread_ids_query="SELECT nope FROM missing", thread_ids_url="sqlite://"
        )
    )
    with pytest.raises(
        SourceOpenError, match=r"thread id query failed on sqlite://.*no such table"
    ):
        missing_table.thread_ids()
    unreachable = AssistantsLiveSource(
        AssistantsLiveSourceConfig(
            thread_ids_query="SELECT 1",
            thread_ids_url="postgresql+psycopg://app:hunter2@127.0.0.1:1/app",
        )
    )
    with pytest.raises(SourceOpenError) as raised:
        unreachable.thread_ids()
    assert "postgresql+psycopg://app:***@127.0.0.1:1/app" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@pytest.mark.postgres
def test_thread_ids_from_postgresql(postgres_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    table = f"{postgres_schema}.assistants_thread_ids"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE TABLE {table} (n int, thread_id text)"))
        connection.execute(
            sqlalchemy.text(f"INSERT INTO {table} VALUES (2, 'thread_y'), (1, 'thread_x')")
        )
    engine.dispose()
    monkeypatch.setenv("THREADS_DB", url)
    source = AssistantsLiveSource(
        AssistantsLiveSourceConfig(
            thread_ids_query=f"SELECT thread_id FROM {table} ORDER BY n",
            thread_ids_url_env="THREADS_DB",
        )
    )
    assert source.thread_ids() == ["thread_x", "thread_y"]
