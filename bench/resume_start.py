"""Resume's time to first write: a job killed halfway, then `migrate resume`.

    .venv/bin/python bench/resume_start.py [--conversations 10000] [--messages 20]
        [--concurrency 32] [--code DIR] [--json]

For each size: a source of N Chat Completions conversations of `--messages` messages (one
create and one append each), a local server in its own process (`migrate serve`, no latency),
`migrate run --target openai` killed with SIGKILL once the server has committed N writes
(half the job's 2N calls), then `migrate resume`. The figure is the wall time from starting
the resume process to the server's first committed write after the kill (the server's commit
log), so it includes interpreter start-up, the take-over of the dead worker's claims, the source
check up to the first conversation it lets through, and the reconciliation of what was in
flight. The resume is stopped right after its first write (`--finish` lets it finish instead).

`--code DIR` runs `migrate run` and `resume` from another checkout (for example the code
before a change, `git archive COMMIT | tar -x -C DIR`): the state store's layout must be the
one that code writes. The target: first write within 5 s at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/...py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import ServerProcess, total_requests


def write_source(path: Path, *, conversations: int, messages: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for number in range(conversations):
            turns = [
                {
                    "role": "user" if turn % 2 == 0 else "assistant",
                    "content": f"conversation {number} says something in turn {turn}",
                }
                for turn in range(messages)
            ]
            out.write(json.dumps({"id": f"bench-{number}", "messages": turns}) + "\n")


def migrate(arguments: list[str], log: Path, code: Path | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "migrate", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=code or None,
        )


def posts(server: ServerProcess) -> int:
    return sum(
        sum(by_status.values())
        for route, by_status in server.stats()["requests"].items()
        if route.startswith("POST /v1/")
    )


def measure(
    conversations: int, *, messages: int, concurrency: int, code: Path | None, finish: bool
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    source, job_dir, log = work / "source.jsonl", work / "job", work / "migrate.log"
    write_source(source, conversations=conversations, messages=messages)
    with ServerProcess(work / "server.db") as server:
        target = ["--target", "openai", "--base-url", server.base_url]
        run = migrate(
            [
                "run",
                str(source),
                *target,
                "--job-dir",
                str(job_dir),
                "--concurrency",
                str(concurrency),
                "--no-progress",
            ],
            log,
            code,
        )
        run_started = time.monotonic()
        while posts(server) < conversations:
            if run.poll() is not None:
                raise SystemExit(f"migrate run ended ({run.returncode}) before half; see {log}")
            time.sleep(0.2)
        run.send_signal(signal.SIGKILL)
        run.wait()
        run_seconds = time.monotonic() - run_started
        time.sleep(0.5)  # writes the server was still answering land before the mark
        mark = server.last_seq()
        sent = posts(server)
        started = time.time()
        resume = migrate(["resume", str(job_dir), "--no-progress"], log, code)
        first: float | None = None
        while first is None:
            log_after = server.commit_log(after=mark)
            if log_after:
                first = float(min(float(entry["at"]) for entry in log_after[:50]))
                break
            if resume.poll() is not None:
                raise SystemExit(f"migrate resume ended ({resume.returncode}); see {log}")
            time.sleep(0.02)
        if finish:
            code_end = resume.wait()
            total = total_requests(server.stats())
        else:
            resume.send_signal(signal.SIGTERM)
            try:
                code_end = resume.wait(timeout=60)
            except subprocess.TimeoutExpired:
                resume.kill()
                code_end = resume.wait()
            total = None
    return {
        "conversations": conversations,
        "messages": messages,
        "killed_after_writes": sent,
        "run_seconds_before_kill": round(run_seconds, 1),
        "first_write_seconds": round(first - started, 2),
        "resume_exit": code_end,
        "requests_total": total,
        "code": str(code) if code else "this checkout",
        "workdir": str(work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[10000])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--code", type=Path, help="run run/resume from this checkout")
    parser.add_argument("--finish", action="store_true", help="let the resume finish")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [
        measure(
            n,
            messages=args.messages,
            concurrency=args.concurrency,
            code=args.code,
            finish=args.finish,
        )
        for n in args.conversations
    ]
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average": load, "results": results}, indent=2))
        return
    for result in results:
        verdict = "met" if result["first_write_seconds"] <= 5 else "NOT MET"
        print(
            f"{result['conversations']} conversations, killed after "
            f"{result['killed_after_writes']} writes: first write {result['first_write_seconds']}"
            f" s after the resume started ({result['code']}) [target 5 s: {verdict}]"
        )
    print(f"load average {load:.1f}")


if __name__ == "__main__":
    main()
