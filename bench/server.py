"""The local Conversations server in its own process (`migrate serve`), with its counters.

The server runs as a child process so that its event loop never shares a core with the client
being measured. Its CPU time is read from `/proc/<pid>/stat`, so a scenario can tell whether the
server or the client was the limit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx2

from migrate.server.testing import AdminClient

STARTUP_TIMEOUT = 30.0
_READY = re.compile(r"Conversations API at (http://\S+/v1)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """`migrate serve` on a free loopback port, with a database file of its own."""

    def __init__(
        self,
        db_path: Path,
        *,
        latency_ms: float = 0.0,
        rpm: int | None = None,
        rate_headers: bool = True,
        fault_rates: dict[str, float] | None = None,
        late_seconds: float | None = None,
        seed: int = 0,
    ) -> None:
        self.db_path = db_path
        self.args = [
            sys.executable,
            "-m",
            "migrate",
            "serve",
            "--port",
            "0",
            "--db",
            str(db_path),
            "--latency-ms",
            str(latency_ms),
            "--seed",
            str(seed),
        ]
        if rpm is not None:
            self.args += ["--rpm", str(rpm)]
        if not rate_headers:
            self.args.append("--no-rate-headers")
        for kind, rate in (fault_rates or {}).items():
            self.args += ["--fault-rate", f"{kind}={rate}"]
        if late_seconds is not None:
            self.args += ["--late-seconds", str(late_seconds)]
        self.base_url = ""
        self._process: subprocess.Popen[str] | None = None
        self._stderr_lines: list[str] = []
        self._admin: AdminClient | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server and wait for the URL it announces on stderr."""
        self._process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stderr is not None
        ready = threading.Event()
        threading.Thread(
            target=self._read_stderr, args=(self._process.stderr, ready), daemon=True
        ).start()
        if not ready.wait(STARTUP_TIMEOUT) or not self.base_url:
            self.stop()
            raise RuntimeError("migrate serve did not start:\n" + "".join(self._stderr_lines[-20:]))
        self._admin = AdminClient(self.base_url)
        return self.base_url

    def _read_stderr(self, stream: IO[str], ready: threading.Event) -> None:
        for line in stream:
            self._stderr_lines.append(line)
            match = _READY.search(line)
            if match and not ready.is_set():
                self.base_url = match.group(1)
                ready.set()
        ready.set()

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # fields[11] and fields[12] are utime and stime (fields 14 and 15 of proc(5))
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stats(self) -> dict[str, Any]:
        """`/_admin/stats`: requests by route and status, faults, commits."""
        assert self._admin is not None
        return self._admin.stats()

    def commit_log(self, *, after: int = 0) -> list[dict[str, Any]]:
        """Committed writes with `seq > after`, oldest first (`seq`, `at`, `operation`, ...)."""
        assert self._admin is not None
        return self._admin.log(after=after)

    def last_seq(self) -> int:
        """The `seq` of the latest committed write (0 before any)."""
        log = self.commit_log()
        return int(log[-1]["seq"]) if log else 0

    def stop(self) -> None:
        """Stop the server (Ctrl-C, then kill if it hangs)."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


PREFLIGHT_READS = 1
"""Requests a job session makes before any work: one read proving the target answers."""


def total_requests(stats: dict[str, Any]) -> int:
    """Every request the server answered (or dropped), over every route and status."""
    return sum(sum(by_status.values()) for by_status in stats["requests"].values())


def requests_with_status(stats: dict[str, Any], status: str) -> int:
    """Requests answered with `status` (e.g. `"429"`), over every route."""
    return sum(by_status.get(status, 0) for by_status in stats["requests"].values())


def window_rate(log: list[dict[str, Any]], *, skip: int = 0) -> tuple[float, int, float]:
    """Commits per second between the `skip`-th commit and the last: (rate, commits, seconds)."""
    times = sorted(float(record["at"]) for record in log)[skip:]
    if len(times) < 2:
        return 0.0, len(times), 0.0
    seconds = times[-1] - times[0]
    return ((len(times) - 1) / seconds if seconds > 0 else 0.0), len(times), seconds


class Neighbour:
    """Another client of the same account: spends the server's rate limit at a steady pace.

    Its requests (reads of a conversation that does not exist) take tokens from the server's
    bucket like any other, so a job sharing the limit meets 429s it could not foresee from its
    own sending. With `burst`, it first spends the whole bucket as fast as the server answers
    (until the first 429); asking faster than the limit refills, it then drains it. `answers`
    counts the neighbour's own responses by status; `stopped_at` is when it stopped (Unix time,
    as the server's commit log).
    """

    def __init__(self, base_url: str, *, per_second: float, burst: bool = False) -> None:
        self._url = f"{base_url}/conversations/conv_neighbour"
        self._interval = 1.0 / per_second
        self._burst = burst
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neighbour", daemon=True)
        self.answers: Counter[str] = Counter()
        self.stopped_at: float | None = None

    def __enter__(self) -> Neighbour:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending (waits for the request in flight)."""
        self._stop.set()
        self._thread.join()
        if self.stopped_at is None:
            self.stopped_at = time.time()

    @property
    def sent(self) -> int:
        """Requests the neighbour has sent."""
        return sum(self.answers.values())

    def _run(self) -> None:
        with httpx2.Client(headers={"Authorization": "Bearer neighbour"}, timeout=10.0) as client:
            while self._burst and not self._stop.is_set() and self._ask(client) != "429":
                pass
            next_at = time.monotonic()
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += self._interval
                self._ask(client)

    def _ask(self, client: httpx2.Client) -> str:
        try:
            status = str(client.get(self._url).status_code)
        except httpx2.HTTPError:
            status = "error"
        self.answers[status] += 1
        return status
