"""`--processes N`: the job's own process and N - 1 more worker processes on this machine.

The extra processes are `multiprocessing` children (start method `spawn`: a fresh interpreter
that inherits none of the parent's threads or connections), each running `work_on_job`, the
function behind `migrate work`. So they share the job exactly as workers on other machines do:
they claim conversations from the job's state store under leases, renew them, and take over
those of a worker that died, reconciling each before any write. They need neither the source
nor the job directory; the parent plans, and writes the report once every worker has stopped.

What the children do comes back to the parent over one queue: their log records (shown on the
parent's terminal and written to its `job.log`) and how many conversations they finished and
items they landed, so the parent's progress bars count every worker.

Signals. Each child starts a session of its own, so a Ctrl-C at the terminal reaches only the
parent, which passes each stop on as SIGTERM: the first stops the children after their calls
in flight, a second stops them at once. When the parent's own replay ends (nothing left to
claim, or a stop), it stops them too. A child that dies, even by SIGKILL, is reaped within
`PUMP_INTERVAL`, so its pid is known to be gone: its claims are freed when its lease runs out,
or sooner by a worker that finds nothing else to claim (`forget_gone_workers`). If the parent
itself dies, the children go on as workers of the job until it is done, or until nobody is
left to plan it (then `migrate resume`).

Why no database server is needed: the default SQLite state store is one file in WAL mode in
which every transaction begins `IMMEDIATE` and waits up to the busy timeout for the write lock
(`migrate.sqlite`), so the processes' writers queue instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from logging.handlers import QueueHandler
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

from sqlalchemy.engine import make_url

from migrate.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, ConfigError, MigrateError
from migrate.jobs.models import ProgressUpdate, WorkConfig
from migrate.jobs.stopping import stoppable
from migrate.replay.target import TargetConfig

logger = logging.getLogger(__name__)

PUMP_INTERVAL = 0.2
"""Seconds between two looks at the children: their messages, and whether they still run."""
PROGRESS_INTERVAL = 0.25
"""Seconds a child gathers its progress before sending it to the parent."""
AT_ONCE_AFTER = 10.0
"""Seconds a child is given to stop at once before it is killed."""

Progress = Callable[[int, int], None]
"""Called with the conversations a child finished and the items it landed since last time."""


def check_processes(processes: int, target: TargetConfig, state_url: str | None) -> None:
    """Raise `ConfigError` unless every one of `processes` can reach the target and the store."""
    if processes <= 1:
        return
    if target.kind == "local":
        raise ConfigError(
            f"--processes {processes}: the local target (--target local) lives inside the "
            "process that runs the job; other processes cannot reach it",
            hint="run `migrate serve` and give --target openai --base-url "
            "http://127.0.0.1:PORT/v1, or drop --processes",
        )
    if state_url is not None:
        url = make_url(state_url)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ConfigError(
                f"--processes {processes}: an in-memory state store cannot be shared",
                hint="give --state a SQLite file or a database server, or drop --processes",
            )


class WorkerProcesses:
    """The extra worker processes of one job: started, watched, stopped and waited for."""

    def __init__(
        self,
        count: int,
        config: WorkConfig,
        *,
        on_progress: Progress,
        stop: threading.Event,
    ) -> None:
        self.count = count
        self.config = config
        self.on_progress = on_progress
        self.stop_requested = stop
        """The parent's own stop: once set, `pump` passes it on to the children."""
        self._context = multiprocessing.get_context("spawn")
        self._messages: Queue[Any] = self._context.Queue()
        self._running: list[BaseProcess] = []
        self._stops_sent = 0

    def start(self) -> None:
        level = logging.getLogger("migrate").getEffectiveLevel()
        for number in range(1, self.count + 1):
            process = self._context.Process(
                target=work_in_child,
                args=(self.config, self._messages, level),
                name=f"migrate-worker-{number}",
            )
            process.start()
            self._running.append(process)
        logger.info(
            "%d more worker processes started: pids %s",
            self.count,
            ", ".join(str(process.pid) for process in self._running),
            extra={"event": "worker_processes", "processes": self.count},
        )

    def pump(self) -> None:
        """Pass on a stop, relay the children's messages, and reap the children that ended."""
        if self.stop_requested.is_set() and not self._stops_sent:
            self.stop()
        while True:
            try:
                message = self._messages.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            if isinstance(message, logging.LogRecord):
                # The parent has already said why the job stops; one line per child repeats it.
                if getattr(message, "event", None) != "stop_requested":
                    logging.getLogger(message.name).handle(message)
            else:
                done, landed = message
                self.on_progress(done, landed)
        for process in [process for process in self._running if not process.is_alive()]:
            self._running.remove(process)
            self._ended(process)

    def stop(self, *, at_once: bool = False) -> None:
        """SIGTERM to every child still running: the first stops them after their calls in
        flight; with `at_once` (or the second time) they stop at once."""
        rounds = 2 if at_once else 1
        while self._stops_sent < rounds:
            self._stops_sent += 1
            for process in self._running:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)
            if self._stops_sent < rounds:
                time.sleep(PUMP_INTERVAL)

    def wait(self, grace: float) -> None:
        """Wait for every child to end (relaying its messages): stop them at once after
        `grace` seconds, and kill any that still runs `AT_ONCE_AFTER` seconds later."""
        deadline = time.monotonic() + grace
        while self._running:
            self.pump()
            if not self._running:
                break
            now = time.monotonic()
            if now >= deadline + AT_ONCE_AFTER:
                for process in self._running:
                    logger.warning("worker process %s (pid %s) killed", process.name, process.pid)
                    process.kill()
            elif now >= deadline and self._stops_sent < 2:
                self.stop(at_once=True)
            time.sleep(PUMP_INTERVAL)
        self.pump()
        self._messages.close()
        self._messages.join_thread()

    async def pump_forever(self) -> None:
        """`pump` every `PUMP_INTERVAL` seconds, from the parent's event loop, until cancelled."""
        while True:
            self.pump()
            await asyncio.sleep(PUMP_INTERVAL)

    @property
    def running(self) -> int:
        return len(self._running)

    def _ended(self, process: BaseProcess) -> None:
        code = process.exitcode
        # Once told to stop, a child may end unfinished (3), or before it could handle SIGTERM.
        stopped = (EXIT_FAILED, -signal.SIGTERM) if self._stops_sent else ()
        expected = (EXIT_OK, EXIT_PARTIAL, *stopped)
        if code in expected:
            logger.info("worker process %s (pid %s) ended (%s)", process.name, process.pid, code)
            return
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"ended with exit code {code}"
        logger.warning(
            "worker process %s (pid %s) %s; the other workers take over its conversations",
            process.name,
            process.pid,
            how,
            extra={"event": "worker_process_ended", "pid": process.pid, "exit_code": code},
        )


def work_in_child(config: WorkConfig, messages: Queue[Any], level: int) -> None:
    """A child's whole life: one more worker of the job, until it is done or told to stop."""
    os.setsid()
    product = logging.getLogger("migrate")
    product.handlers = [QueueHandler(messages)]
    product.setLevel(level)
    product.propagate = False
    # Imported here: `migrate.jobs.run` starts these processes, so it imports this module.
    from migrate.jobs.run import work_on_job

    progress = _ProgressSender(messages)
    code = EXIT_FAILED
    with stoppable() as stop:
        try:
            code = work_on_job(config, progress=progress.send, stop=stop).exit_code
        except MigrateError as exc:
            logger.error("worker process: %s", exc, extra={"event": "error", **exc.context})
            code = exc.exit_code
        except KeyboardInterrupt:
            logger.info("worker process stopped at once")
        except Exception as exc:
            logger.exception("worker process: unexpected %s: %s", type(exc).__name__, exc)
        finally:
            progress.flush()
    sys.exit(code)


class _ProgressSender:
    """Turns a child's progress updates into (conversations, items) increments, a few a second."""

    def __init__(self, messages: Queue[Any]) -> None:
        self.messages = messages
        self.sent: tuple[int, int] | None = None
        self.latest = (0, 0)
        self.last_sent = 0.0

    def send(self, update: ProgressUpdate) -> None:
        self.latest = (update.conversations_done, update.items_landed)
        if self.sent is None:
            self.sent = self.latest  # what was done before this worker joined
        elif time.monotonic() - self.last_sent >= PROGRESS_INTERVAL:
            self.flush()

    def flush(self) -> None:
        if self.sent is None or self.latest == self.sent:
            return
        done, landed = (now - before for now, before in zip(self.latest, self.sent, strict=True))
        self.messages.put((done, landed))
        self.sent = self.latest
        self.last_sent = time.monotonic()
