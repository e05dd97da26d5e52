"""Running a long job: preflight, an unreachable target, SIGTERM, liveness, logs, progress."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.cli.render import ProgressBars
from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CallUnreachable, TargetUnreachableError
from migrate.jobs.models import JobRef, ProgressUpdate, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.jobs.verify import verify_job
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.target import Target, TargetConfig
from migrate.server.embedded import EmbeddedServer
from migrate.server.options import ServerOptions
from migrate.server.testing import ServerFactory
from migrate.state.store import StateStore
from tests.adapters.test_assistants_live import BASE_URL as ASSISTANTS_URL
from tests.adapters.test_assistants_live import replay as replay_cassette
from tests.replay.helpers import assert_exactly_once, run_config, write_source


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- preflight ---------------------------------------------------------------------------------


def test_a_wrong_base_url_stops_before_planning_with_exit_2(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=1000, messages=2, tools=False)
    job_dir = tmp_path / "job"
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(source),
            "--target",
            "openai",
            "--base-url",
            base_url,
            "--job-dir",
            str(job_dir),
        ],
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert f"cannot reach Conversations-compatible server at {base_url}" in result.stderr
    assert "check --base-url" in result.stderr
    assert "Traceback" not in result.output
    # Nothing was planned, so no conversation can have failed: the job was never created.
    assert not job_dir.exists()


def test_a_refused_key_stops_before_planning_with_exit_2(
    tmp_path: Path, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = local_server(ServerOptions(api_key="the-right-key"))
    monkeypatch.setenv("OPENAI_API_KEY", "a-wrong-key")
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=2)
    result = CliRunner().invoke(
        main,
        ["run", str(source), "--target", "openai", "--base-url", base_url, "--job-dir", "job"],
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert "refuses the key" in result.stderr
    assert "a-wrong-key" not in result.output


def test_a_silent_target_stops_the_job_after_the_stated_time() -> None:
    now = [1000.0]
    target = Target(
        None,  # type: ignore[arg-type]  # no call is made: the clock and the bookkeeping only
        limiter=RateLimiter(),
        timeout=5.0,
        description="the target",
        unreachable_after=60.0,
        clock=lambda: now[0],
    )
    now[0] += 1.0
    error = CallUnreachable("cannot connect")
    target._no_answer(error, started=now[0])
    assert error.target_silent
    now[0] += 59.0
    target.raise_if_unreachable()  # not yet
    target._answered()  # one answer resets the clock
    now[0] += 120.0
    target.raise_if_unreachable()
    target._no_answer(CallUnreachable("cannot connect"), started=now[0])
    now[0] += 60.0
    with pytest.raises(TargetUnreachableError, match=r"target unreachable since .*resume"):
        target.raise_if_unreachable()


def test_a_target_stopped_mid_run_stops_the_job_and_resume_completes_it(tmp_path: Path) -> None:
    conversations = 30
    source = write_source(tmp_path / "source.jsonl", conversations=conversations, messages=25)
    db = tmp_path / "target.db"
    options = ServerOptions(latency_ms=5)
    server = EmbeddedServer(options, db)
    base_url = server.start()
    port = urlsplit(base_url).port
    assert port is not None
    # One retry only: if the silent target's refusals were spent on the conversations, they
    # would fail; the job must stop instead.
    target = TargetConfig(kind="openai", base_url=base_url, timeout=2.0, unreachable_after=1.0)
    config = run_config(source, tmp_path / "job", concurrency=4, retry_budget=1, target=target)
    stopping = threading.Event()

    def stop_the_target(update: ProgressUpdate) -> None:
        if update.conversations_done >= 5 and not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.stop).start()

    try:
        with pytest.raises(TargetUnreachableError, match="target unreachable since") as raised:
            run_job(config, progress=stop_the_target)
        assert raised.value.exit_code == EXIT_FAILED
        assert "migrate resume" in str(raised.value)
        stopped = job_status(JobRef(job_dir=tmp_path / "job"))
        with sqlite3.connect(tmp_path / "job" / "state.db") as db_connection:
            failures = db_connection.execute(
                "SELECT source_id, error_code, error_message FROM conversations"
                " WHERE status = 'failed'"
            ).fetchall()
        assert stopped.conversations.failed == 0, failures
        assert stopped.conversations.migrated < conversations
        assert stopped.state == "interrupted"
    finally:
        server.stop()
    back = EmbeddedServer(options, db, port=port)
    back.start()
    try:
        summary = resume_job(ResumeConfig(job=JobRef(job_dir=tmp_path / "job")))
        assert summary.exit_code == EXIT_OK, summary
        assert summary.conversations.migrated == conversations
        report = verify_job(JobRef(job_dir=tmp_path / "job"))
        assert report.checked == conversations and report.differing == 0, report.conversations
    finally:
        back.stop()


# --- signals and liveness ----------------------------------------------------------------------


def _start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_for(log: Path, text: bytes, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        if text in log.read_bytes():
            return
        time.sleep(0.01)
    raise AssertionError(log.read_text(errors="replace"))


def _wait_for_landed(job_dir: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60.0
    while process.poll() is None and time.monotonic() < deadline:
        if job_status(JobRef(job_dir=job_dir)).items.landed > 0:
            return
        time.sleep(0.02)


def test_sigterm_stops_like_the_first_ctrl_c_and_resume_finishes(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=60, messages=30)
    job_dir = tmp_path / "job"
    log = tmp_path / "out.log"
    process = _start(
        ["run", str(source), "--job-dir", str(job_dir), "--concurrency", "4", "--latency-ms", "20"],
        log,
    )
    _wait_for(log, b"target:", process)
    _wait_for_landed(job_dir, process)
    assert process.poll() is None, log.read_text(errors="replace")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_FAILED, log.read_text(errors="replace")
    output = log.read_text(errors="replace")
    assert "SIGTERM: stopping after the calls in flight" in output
    assert f"migrate resume {job_dir}" in output
    assert "Traceback" not in output
    # Nothing in doubt: every call that was sent has its outcome recorded.
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        rows = [row for row, _ in store.iter_conversations()]
        assert all(store.open_intents(row.seq) == [] for row in rows)
        assert store.totals().migrated < 60
    finally:
        store.close()
    assert job_status(JobRef(job_dir=job_dir)).state == "interrupted"
    resumed = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert_exactly_once(job_dir, migrated=60)


def test_status_tells_a_live_job_from_one_whose_process_died(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=200, messages=30)
    job_dir = tmp_path / "job"
    log = tmp_path / "out.log"
    process = _start(
        ["run", str(source), "--job-dir", str(job_dir), "--concurrency", "2", "--latency-ms", "20"],
        log,
    )
    try:
        _wait_for(log, b"target:", process)
        _wait_for_landed(job_dir, process)
        live = CliRunner().invoke(main, ["status", str(job_dir)])
        assert "(running)" in live.stdout, live.output
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    dead = CliRunner().invoke(main, ["status", str(job_dir)])
    assert dead.exit_code == EXIT_OK
    assert "(interrupted (process gone since 20" in dead.stdout, dead.stdout
    summary = json.loads(CliRunner().invoke(main, ["status", str(job_dir), "--json"]).stdout)
    assert summary["state"] == "interrupted"
    assert summary["process_gone_since"] <= time.time()


# --- logs, --json, progress --------------------------------------------------------------------


def test_every_job_writes_job_log_as_json_lines(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=12, messages=30)
    job_dir = tmp_path / "job"
    extra_log = tmp_path / "extra.log"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(source),
            "--job-dir",
            str(job_dir),
            "--fault",
            "drop_after_commit=0.3",
            "--fault-seed",
            "3",
            "--settle",
            "0.1",
            "--json",
            "-v",
            "--log-file",
            str(extra_log),
        ],
    )
    assert result.exit_code == EXIT_OK, result.output
    # --json: the final summary is the one JSON object on stdout.
    summary = json.loads(result.stdout)
    assert summary["conversations"]["migrated"] == 12
    # -v: info lines on the terminal.
    assert "migrate: session started" in result.stderr
    entries = [json.loads(line) for line in (job_dir / "job.log").read_text().splitlines()]
    events = [entry["event"] for entry in entries]
    assert events.count("session_start") == events.count("session_end") == 1
    assert "reconcile" in events
    reconcile = next(entry for entry in entries if entry["event"] == "reconcile")
    assert reconcile["source_id"].startswith("conv-")
    assert reconcile["target_conversation_id"].startswith("conv_")
    end = next(entry for entry in entries if entry["event"] == "session_end")
    assert (end["migrated"], end["failed"], end["state"]) == (12, 0, "finished")
    assert all(entry["time"].endswith("Z") and entry["level"] for entry in entries)
    assert extra_log.read_text().splitlines() == (job_dir / "job.log").read_text().splitlines()


def test_a_resume_appends_its_session_to_job_log(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=4)
    job_dir = tmp_path / "job"
    runner = CliRunner()
    assert runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir)]).exit_code == 0
    resumed = runner.invoke(main, ["resume", str(job_dir), "--json", "--quiet"])
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert json.loads(resumed.stdout)["state"] == "finished"
    assert resumed.stderr == ""
    events = [json.loads(line)["event"] for line in (job_dir / "job.log").read_text().splitlines()]
    assert events.count("session_start") == 2


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        (["--progress"], True),
        (["--no-progress"], False),
        (["--quiet"], False),
        ([], False),  # stderr is not a terminal under the runner
    ],
)
def test_progress_bars_obey_the_switches(tmp_path: Path, arguments: list[str], shown: bool) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=5, messages=4)
    runner = CliRunner()
    planned = runner.invoke(
        main, ["plan", str(source), "--job-dir", str(tmp_path / "plan"), *arguments]
    )
    assert planned.exit_code == EXIT_OK, planned.output
    # A JSON Lines source has a known total: the bar shows it, with a percentage.
    assert ("planning: 100%" in planned.stderr and "5/5" in planned.stderr) is shown
    job_dir = tmp_path / "job"
    ran = runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir), *arguments])
    assert ran.exit_code == EXIT_OK, ran.output
    assert ("conversations: 100%" in ran.stderr) is shown
    for verb, label in (("verify", "verifying"), ("report", "report"), ("rollback", "deleting")):
        extra = ["--yes"] if verb == "rollback" else []
        done = runner.invoke(main, [verb, str(job_dir), *extra, *arguments])
        assert done.exit_code == EXIT_OK, done.output
        assert (f"{label}: 100%" in done.stderr) is shown, done.stderr
    if "--quiet" in arguments:
        assert ran.stderr == ""


# --- the job directory -------------------------------------------------------------------------


def test_plan_refuses_a_directory_that_holds_a_plan_or_a_job(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=4)
    runner = CliRunner()
    plan_dir, job_dir = tmp_path / "plan", tmp_path / "job"
    assert runner.invoke(main, ["plan", str(source), "--job-dir", str(plan_dir)]).exit_code == 0
    again = runner.invoke(main, ["plan", str(source), "--job-dir", str(plan_dir)])
    assert again.exit_code == EXIT_USAGE
    assert "already holds a plan" in again.stderr and "--force" in again.stderr
    forced = runner.invoke(main, ["plan", str(source), "--job-dir", str(plan_dir), "--force"])
    assert forced.exit_code == EXIT_OK, forced.output
    assert runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir)]).exit_code == 0
    id_map = (job_dir / "conversations.csv").read_bytes()
    over_job = runner.invoke(main, ["plan", str(source), "--job-dir", str(job_dir)])
    assert over_job.exit_code == EXIT_USAGE
    assert "already holds a job" in over_job.stderr
    assert (job_dir / "conversations.csv").read_bytes() == id_map


def test_source_paths_are_stored_absolute_so_resume_works_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    write_source(work / "source.jsonl", conversations=3, messages=4)
    monkeypatch.chdir(work)
    job_dir = tmp_path / "job"
    ran = CliRunner().invoke(main, ["run", "source.jsonl", "--job-dir", str(job_dir)])
    assert ran.exit_code == EXIT_OK, ran.output
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        path = Path(store.job().config["job"]["source"]["path"])
    finally:
        store.close()
    assert path.is_absolute() and path == work / "source.jsonl"
    monkeypatch.chdir(tmp_path)
    resumed = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_OK, resumed.output


def test_a_relative_sqlite_url_is_stored_absolute_so_resume_works_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with sqlite3.connect(work / "chat.db") as database:
        database.execute(
            "CREATE TABLE message_store (id INTEGER PRIMARY KEY, session_id TEXT, message TEXT)"
        )
        database.executemany(
            "INSERT INTO message_store (session_id, message) VALUES (?, ?)",
            [
                (f"s{n}", json.dumps({"type": "human", "data": {"content": f"hello {n}"}}))
                for n in range(3)
            ],
        )
    monkeypatch.chdir(work)
    job_dir = tmp_path / "job"
    ran = CliRunner().invoke(
        main, ["run", "sqlite:///chat.db", "--preset", "langchain", "--job-dir", str(job_dir)]
    )
    assert ran.exit_code == EXIT_OK, ran.output
    store = StateStore.from_url(f"sqlite:///{job_dir / 'state.db'}")
    try:
        url = store.job().config["job"]["source"]["url"]
    finally:
        store.close()
    assert url == f"sqlite:///{work / 'chat.db'}"
    monkeypatch.chdir(tmp_path)
    resumed = CliRunner().invoke(main, ["resume", str(job_dir)])
    assert resumed.exit_code == EXIT_OK, resumed.output


def test_plan_jsonl_is_written_only_when_asked(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=30)
    runner = CliRunner()
    lean = runner.invoke(main, ["plan", str(source), "--job-dir", str(tmp_path / "lean")])
    assert lean.exit_code == EXIT_OK, lean.output
    assert not (tmp_path / "lean" / "plan.jsonl").exists()
    full = runner.invoke(
        main, ["plan", str(source), "--job-dir", str(tmp_path / "full"), "--write-plan"]
    )
    assert full.exit_code == EXIT_OK, full.output
    requests = (tmp_path / "full" / "plan.jsonl").read_text().splitlines()
    # The same plan either way: the summary counts every request, written or not.
    lean_summary = json.loads((tmp_path / "lean" / "summary.json").read_text())
    assert len(requests) == lean_summary["api_calls"] > 0


def test_the_resume_source_check_shows_its_progress(tmp_path: Path) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=150, messages=4)
    job_dir = tmp_path / "job"
    runner = CliRunner()
    assert runner.invoke(main, ["run", str(source), "--job-dir", str(job_dir)]).exit_code == 0
    resumed = runner.invoke(main, ["resume", str(job_dir), "--progress"])
    assert resumed.exit_code == EXIT_OK, resumed.output
    assert "source check: 100%" in resumed.stderr and "150/150" in resumed.stderr


def test_a_base_url_with_the_wrong_path_stops_before_planning(
    tmp_path: Path, local_server: ServerFactory
) -> None:
    base_url = local_server(ServerOptions()).replace("/v1", "/v2")
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=2)
    result = CliRunner().invoke(
        main,
        ["run", str(source), "--target", "openai", "--base-url", base_url, "--job-dir", "job"],
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert "does not look like a Conversations API" in result.stderr
    assert "Invalid URL (GET /v2/conversations/" in result.stderr


def test_vv_shows_debug_lines_that_v_keeps_back(tmp_path: Path) -> None:
    """(-v itself is checked with the job log above: its info lines reach the terminal.)"""
    source = write_source(tmp_path / "source.jsonl", conversations=2, messages=2)
    runner = CliRunner()
    shown: dict[str, str] = {}
    for flags in ([], ["-v"], ["-vv"]):
        job_dir = tmp_path / f"plan{len(flags)}{''.join(flags)}"
        result = runner.invoke(main, ["plan", str(source), "--job-dir", str(job_dir), *flags])
        assert result.exit_code == EXIT_OK, result.output
        shown[" ".join(flags)] = result.stderr
    debug = f"migrate: reading {source} as chat_completions"
    assert debug in shown["-vv"]
    assert debug not in shown["-v"] and debug not in shown[""]


def test_export_threads_shows_a_bar_with_its_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    arguments = [
        "export-threads",
        "--base-url",
        ASSISTANTS_URL,
        "--thread",
        "thread_XaNJDdLqZ9LrOopr7AkBNlcu",
        "--thread",
        "thread_i3Hs96sQAsLBfOTU1Rl6137V",
        "--out",
        str(tmp_path / "exports"),
        "--progress",
    ]
    with replay_cassette("ruby_threads"):
        result = CliRunner().invoke(main, arguments)
    assert result.exit_code == EXIT_OK, result.output
    assert "threads: 100%" in result.stderr and "2/2" in result.stderr


def test_the_run_bar_shows_the_rate_limit_and_429_waits() -> None:
    with ProgressBars() as bars:
        bars.update(
            ProgressUpdate(
                event="progress",
                conversations_known=10,
                conversations_done=3,
                rate_limit=2.5,
                waiting_429=12.0,
            )
        )
        assert bars.conversations is not None
        assert bars.conversations.postfix == "limit 2.5/s, 429 wait 12s"


@pytest.mark.parametrize("verb", ["sync", "work"])
def test_sync_and_work_make_the_same_preflight(tmp_path: Path, verb: str) -> None:
    source = write_source(tmp_path / "source.jsonl", conversations=3, messages=2)
    job_dir = tmp_path / "job"
    if verb == "sync":
        base_url = f"http://127.0.0.1:{closed_port()}/v1"
        arguments = ["sync", str(source), "--target", "openai", "--base-url", base_url]
        arguments += ["--job-dir", str(job_dir)]
    else:
        # A job on a server that then stops: a worker joining it finds the target gone.
        server = EmbeddedServer(ServerOptions(), tmp_path / "target.db")
        base_url = server.start()
        try:
            config = run_config(
                source, job_dir, target=TargetConfig(kind="openai", base_url=base_url)
            )
            job_id = run_job(config).job_id
        finally:
            server.stop()
        state = f"sqlite:///{job_dir / 'state.db'}"
        arguments = ["work", "--state", state, "--job", job_id]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == EXIT_USAGE, result.output
    assert f"cannot reach Conversations-compatible server at {base_url}" in result.stderr
    assert "Traceback" not in result.output
