"""Helpers for the replay tests: synthetic sources, job configs, fresh databases, and an independent
look at what the local server really holds (its own database, not the job's state store)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from migrate.config import build_job_config
from migrate.jobs.directory import open_job
from migrate.jobs.models import JobRef, RunConfig
from migrate.jobs.status import job_status
from migrate.jobs.verify import verify_job
from migrate.replay.replayer import ReplayOptions
from migrate.replay.stored import item_difference
from migrate.replay.target import TargetConfig
from migrate.server.store import ConversationStore
from migrate.state.store import StateStore
from tests.databases import unreachable


def write_source(
    path: Path, *, conversations: int, messages: int, prefix: str = "conv", tools: bool = True
) -> Path:
    """A Chat Completions JSONL file: `conversations` lines of `messages` entries each.

    Every fifth conversation carries a tool call and its output, so that function items are
    replayed and compared too.
    """
    with path.open("w", encoding="utf-8") as out:
        for number in range(conversations):
            entries: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
            for turn in range(1, messages):
                role = "user" if turn % 2 else "assistant"
                entries.append({"role": role, "content": f"{prefix} {number} says {turn}"})
            if tools and number % 5 == 0:
                entries.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{number}",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q": 1}'},
                            }
                        ],
                    }
                )
                entries.append({"role": "tool", "tool_call_id": f"call_{number}", "content": "42"})
            record = {"id": f"{prefix}-{number:04d}", "messages": entries}
            out.write(json.dumps(record) + "\n")
    return path


TEST_SETTLE = 0.05
"""The tests' settle time: their faults apply writes at once (or at a known delay, with a
settle of their own), so nothing needs the product's cautious default."""


def run_config(
    source: Path,
    job_dir: Path,
    *,
    concurrency: int = 2,
    timeout: float = 10.0,
    retry_budget: int = 10,
    server: dict[str, Any] | None = None,
    target: TargetConfig | None = None,
    create_with_items: bool = False,
    read_item_ids: bool = False,
    settle: float = TEST_SETTLE,
) -> RunConfig:
    """A run of `source` into the local target (with `server` options) in `job_dir`."""
    return RunConfig(
        job=build_job_config(source=str(source), job_file=None),
        job_dir=job_dir,
        target=target or TargetConfig(timeout=timeout, server_options=server or {}),
        replay=ReplayOptions(
            concurrency=concurrency,
            retry_budget=retry_budget,
            backoff_base=0.01,
            create_with_items=create_with_items,
            read_item_ids=read_item_ids,
            settle=settle,
        ),
    )


class ServerContents(BaseModel):
    """What the local server's database holds, read directly."""

    conversations: int
    empty: int
    items: int
    by_conversation: dict[str, list[dict[str, Any]]]


def server_contents(job_dir: Path) -> ServerContents:
    """Every live conversation and item in the job's local server database."""
    store = ConversationStore.from_path(job_dir / "server.db")
    try:
        summaries = store.summaries(include_deleted=False)
        items = {s.id: store.all_items(s.id) for s in summaries}
    finally:
        store.close()
    return ServerContents(
        conversations=len(summaries),
        empty=sum(1 for s in summaries if s.item_count == 0),
        items=sum(s.item_count for s in summaries),
        by_conversation=items,
    )


def job_conversation_ids(job_dir: Path) -> set[str]:
    """The target conversation ids the job's state store holds."""
    store = open_job(JobRef(job_dir=job_dir))
    try:
        return {
            row.conversation_id
            for row, _ in store.iter_conversations()
            if row.conversation_id is not None
        }
    finally:
        store.close()


def assert_exactly_once(job_dir: Path, *, migrated: int) -> None:
    """Every planned conversation landed once with exactly its items; only orphans besides.

    `verify` runs here, so every item id the run left unread is read (and recorded) by it."""
    summary = job_status(JobRef(job_dir=job_dir))
    assert summary.conversations.migrated == migrated, summary
    assert summary.conversations.pending == summary.conversations.in_progress == 0
    assert summary.items.landed == summary.items.planned
    report = verify_job(JobRef(job_dir=job_dir))
    assert report.differing == 0, report.conversations
    assert report.checked == migrated
    assert job_status(JobRef(job_dir=job_dir)).items.unread_ids == 0
    contents = server_contents(job_dir)
    ours = job_conversation_ids(job_dir)
    # Conversations a lost create made with its first batch (`--create-with-items` on a
    # target that cannot list conversations): only as many as the job counted.
    full_orphans = [
        conversation_id
        for conversation_id, held in contents.by_conversation.items()
        if held and conversation_id not in ours
    ]
    assert len(full_orphans) <= summary.possible_orphans_with_items
    # Nothing but the migrated conversations and possible orphans exists on the server.
    assert contents.conversations - contents.empty - len(full_orphans) == migrated
    assert contents.empty <= summary.possible_orphans
    orphaned_items = sum(len(contents.by_conversation[c]) for c in full_orphans)
    assert contents.items - orphaned_items == summary.items.planned


def target_mismatches(job_dir: Path, server_db: Path) -> dict[str, str]:
    """Migrated conversations whose items in the server's own database are not exactly their
    plan's, by source id, with how many items the server holds against the plan."""
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    server = ConversationStore.from_path(server_db)
    wrong: dict[str, str] = {}
    try:
        for row, plan in store.iter_conversations(statuses=["migrated"], with_plans=True):
            assert plan is not None and row.conversation_id is not None
            held = server.all_items(row.conversation_id)
            same = len(held) == len(plan.items) and all(
                item_difference(planned.item, item) is None
                for planned, item in zip(plan.items, held, strict=False)
            )
            if not same:
                wrong[plan.source_id] = f"{len(held)} items held, {len(plan.items)} planned"
    finally:
        server.close()
        store.close()
    return wrong


POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


def fresh_database(server: str, what: str) -> Iterator[str]:
    """A new empty database on `server`, dropped afterwards; skips if the server is down."""
    name = f"migrate_state_{secrets.token_hex(5)}"
    admin_db = "/test" if server.startswith("postgresql") else "/"
    engine = create_engine(
        server + admin_db, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except SQLAlchemyError as exc:
        engine.dispose()
        unreachable(what, exc)
    try:
        yield f"{server}/{name}"
    finally:
        with engine.connect() as conn:
            if server.startswith("postgresql"):
                conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE {name}"))
        engine.dispose()


# --- processes: the server, runs and workers as separate processes ----------------------------


def start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`migrate ARGUMENTS` in a process of its own, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@contextlib.contextmanager
def served(db: Path, log: Path, *arguments: str) -> Iterator[str]:
    """`migrate serve` in its own process; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start(["serve", "--port", str(port), "--db", str(db), *arguments], log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


def wait_for_job_id(job_dir: Path, alive: Callable[[], bool]) -> str:
    """The id of the job a run (alive while `alive()`) creates in `job_dir`."""
    deadline = time.monotonic() + 120  # start-up imports take long on a loaded machine
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError, ValueError, KeyError):
            return str(json.loads((job_dir / "job.json").read_text())["job_id"])
        time.sleep(0.02)
    raise AssertionError("the run never created its job")


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """The first true value of `condition()`, looked at every 20 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")
