"""`migrate serve` and `migrate inspect`, and the embedded `running_server`."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from openai import OpenAI
from pydantic import SecretStr

from migrate.cli import main
from migrate.cli.serve import describe_switches
from migrate.server.embedded import running_server
from migrate.server.options import FaultSettings, ServerOptions
from migrate.server.store import ConversationStore


@pytest.fixture
def rehearsal_db(tmp_path: Path) -> tuple[Path, str, str]:
    """A database written through the embedded server: one conversation of 3 items, one empty."""
    path = tmp_path / "rehearsal.db"
    with (
        running_server(ServerOptions(), path) as base_url,
        OpenAI(base_url=base_url, api_key="test", max_retries=0) as client,
    ):
        full = client.conversations.create(metadata={"source_id": "t-1"})
        client.conversations.items.create(
            full.id,
            items=[
                {"type": "message", "role": "user", "content": "What is 2+2?"},
                {"type": "function_call", "call_id": "c1", "name": "add", "arguments": "[2,2]"},
                {"type": "function_call_output", "call_id": "c1", "output": "4"},
            ],
        )
        empty = client.conversations.create()
        client.conversations.delete(empty.id)
    return path, full.id, empty.id


def test_running_server_persists_to_the_named_file_and_releases_the_port(
    tmp_path: Path,
) -> None:
    path = tmp_path / "target.db"
    with running_server(ServerOptions(), path) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with OpenAI(base_url=base_url, api_key="test", max_retries=0) as client:
            conversation = client.conversations.create()
    store = ConversationStore.from_path(path)
    assert store.get_conversation(conversation.id) is not None
    store.close()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{base_url}/conversations/{conversation.id}")


def test_inspect_lists_conversations(rehearsal_db: tuple[Path, str, str]) -> None:
    path, full, empty = rehearsal_db
    result = CliRunner().invoke(main, ["inspect", "--db", str(path)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(full) and "3 items" in lines[0] and '"source_id": "t-1"' in lines[0]
    assert lines[1].startswith(empty) and lines[1].endswith("(deleted)")
    assert "2 conversations" in result.stderr


def test_inspect_json_lines(rehearsal_db: tuple[Path, str, str]) -> None:
    path, full, empty = rehearsal_db
    result = CliRunner().invoke(main, ["inspect", "--db", str(path), "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["id"], row["item_count"], row["deleted"]) for row in rows] == [
        (full, 3, False),
        (empty, 0, True),
    ]


def test_inspect_one_conversation(rehearsal_db: tuple[Path, str, str]) -> None:
    path, full, _ = rehearsal_db
    result = CliRunner().invoke(main, ["inspect", "--db", str(path), full])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(full)
    assert "user: What is 2+2?" in lines[1]
    assert "add([2,2]) call_id=c1" in lines[2]
    assert "call_id=c1 -> 4" in lines[3]

    as_json = CliRunner().invoke(main, ["inspect", "--db", str(path), full, "--json"])
    body = json.loads(as_json.stdout)
    assert [item["type"] for item in body["items"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_inspect_unknown_conversation(rehearsal_db: tuple[Path, str, str]) -> None:
    path, _, _ = rehearsal_db
    result = CliRunner().invoke(main, ["inspect", "--db", str(path), "conv_nope"])
    assert result.exit_code == 3
    assert "conv_nope" in result.stderr and str(path) in result.stderr
    assert result.stdout == ""


def test_inspect_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    result = CliRunner().invoke(main, ["inspect", "--db", str(path)])
    assert result.exit_code == 2
    assert "other tables" in result.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--fault-rate", "explode=0.1"], "KIND=RATE"),
        (["--fault-rate", "error_before=lots"], "rate must be a number"),
        (["--fault-rate", "error_before=0.7", "--fault-rate", "burst_503=0.7"], "at most 1"),
        (["--fault-script", "error_before,meteor"], "meteor"),
        (["--rpm", "0"], "rpm"),
    ],
)
def test_serve_rejects_bad_switches(tmp_path: Path, flags: list[str], words: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.db"), *flags])
    assert result.exit_code == 2
    assert words in result.output + result.stderr
    assert not (tmp_path / "x.db").exists()


def test_startup_line_names_every_switch_but_never_the_key() -> None:
    options = ServerOptions(
        api_key=SecretStr("sk-very-secret"),
        latency_ms=50,
        jitter_ms=10,
        rpm=600,
        seed=9,
        faults=FaultSettings.model_validate(
            {"rates": {"drop_after_commit": 0.05}, "script": ["error_before"]}
        ),
    )
    line = describe_switches(options)
    for words in (
        "latency 50ms+10ms jitter",
        "rate limit 600/min",
        "drop_after_commit=0.05",
        "fault script error_before",
        "seed 9",
    ):
        assert words in line
    assert "sk-very-secret" not in line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "rehearsal.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "migrate", "serve", "--port", str(port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        startup = process.stderr.readline()
        assert f"http://127.0.0.1:{port}/v1" in startup
        assert str(db) in startup and "no rate limit" in startup
        with OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as client:
            conversation = client.conversations.create()
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "stopped" in rest
    store = ConversationStore.from_path(db)
    assert store.get_conversation(conversation.id) is not None
    store.close()
