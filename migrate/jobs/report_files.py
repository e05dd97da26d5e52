"""The report's tables, kept up to date as conversations finish.

`conversations.csv`, `items.csv`, `findings.jsonl` and `errors.jsonl` hold one row (or a few)
per conversation in source order. The job appends the rows of every conversation that has
finished, once all before it have (`advance`, every few seconds while it runs), and records in
the state store how far the files go: the first conversation not in them, each file's size,
and a signature of the rows written (`migrate.state.report_reads`). The end of the job then
only appends the rows after that point (`finish`: the conversations still pending, in
progress, or finished after the last advance) and writes `summary.json` and `report.html`.

After a kill, the next advance cuts each file back to its recorded size and goes on from
there, so no row is written twice and none is missing. Rows of conversations that had not
finished are cut the same way and written again once they have. When a row already written
has changed since (a failed conversation retried, `migrate verify` reading item ids, a
rollback), the signature no longer matches and the files are written again from the start.
A `.gz` file is a series of gzip members, one per append (any gzip reader reads it whole).
One process writes at a time: each advance holds a lock on `.report.lock` in the directory.
"""

from __future__ import annotations

import fcntl
import gzip
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from migrate.jobs.files import COMPRESS_LEVEL, GZIP, report_path
from migrate.state.report_reads import ReportProgress, combine
from migrate.state.store import StateStore

ADVANCE_CHUNK = 5000
"""Conversations appended between two records of the progress: a kill loses at most these."""
LOCK_FILE = ".report.lock"

RowWriter = Callable[[IO[str], int, int], None]
"""Appends the rows of conversations `start <= seq < stop` to an open file."""


class ReportTables:
    """The report's tables in `directory`, written by `writers` (name -> (header, rows))."""

    def __init__(
        self,
        store: StateStore,
        directory: Path,
        writers: dict[str, tuple[str, RowWriter]],
        *,
        compress: bool,
        kept: bool,
    ) -> None:
        """`kept`: the files are the job directory's, whose progress the state store keeps
        (else they are written whole each time, e.g. `migrate report --out`)."""
        self.store = store
        self.directory = directory
        self.writers = writers
        self.compress = compress
        self.kept = kept
        self._checked = False
        """Whether this process compared the rows written with the store's (once)."""

    def paths(self) -> list[Path]:
        return [report_path(self.directory, name, compress=self.compress) for name in self.writers]

    def advance(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Append the rows of the conversations finished since; returns where the files end."""
        with self._locked():
            return self._advance(self._start(), progress)

    def finish(self, progress: Callable[[int, int], None] | None = None) -> list[Path]:
        """Bring the files up to date, every conversation in them (finished or not)."""
        with self._locked():
            self._checked = False
            state = self._advance(self._start(), progress)
            total = max(state, self.store.known_count())
            self._append(state, total)
            if progress is not None:
                progress(total, total)
        return self.paths()

    # --- steps -----------------------------------------------------------------------------

    def _start(self) -> ReportProgress:
        """Where the files end (after cutting them back to it), or an empty start."""
        saved = self.store.report_progress() if self.kept else None
        if saved is not None and not self._matches(saved):
            saved = None
        if saved is None:
            saved = ReportProgress(
                below=0,
                files={"compress": self.compress, "sizes": dict.fromkeys(self.writers, 0)},
                signature=self.store.report_signature(0, 0),
            )
            for name in self.writers:
                (self.directory / name).unlink(missing_ok=True)
                (self.directory / (name + GZIP)).unlink(missing_ok=True)
        for name, size in saved.files["sizes"].items():
            path = self._path(name)
            if path.exists():
                os.truncate(path, size)
        self._checked = True
        return saved

    def _matches(self, saved: ReportProgress) -> bool:
        if saved.files.get("compress") != self.compress:
            return False
        sizes = saved.files.get("sizes", {})
        if set(sizes) != set(self.writers):
            return False
        for name, size in sizes.items():
            path = self._path(name)
            actual = path.stat().st_size if path.exists() else 0
            if actual < size:
                return False
        return self._checked or self.store.report_signature(0, saved.below) == saved.signature

    def _advance(self, saved: ReportProgress, progress: Callable[[int, int], None] | None) -> int:
        frontier = self.store.report_frontier()
        total = self.store.known_count()
        start = saved.below
        while start < frontier:
            stop = min(frontier, start + ADVANCE_CHUNK)
            sizes = self._append(start, stop)
            saved = ReportProgress(
                below=stop,
                files={"compress": self.compress, "sizes": sizes},
                signature=combine(saved.signature, self.store.report_signature(start, stop)),
            )
            if self.kept:
                self.store.save_report_progress(saved)
            if progress is not None:
                progress(stop, max(total, stop))
            start = stop
        return start

    def _append(self, start: int, stop: int) -> dict[str, int]:
        """Append the rows of `start <= seq < stop` to every file, durably; their new sizes."""
        sizes = {}
        for name, (header, write_rows) in self.writers.items():
            path = self._path(name)
            with path.open("ab") as raw:
                empty = raw.tell() == 0
                with _text(raw, compress=self.compress) as file:
                    if empty and header:
                        file.write(header)
                    write_rows(file, start, stop)
                raw.flush()
                os.fsync(raw.fileno())
                sizes[name] = raw.tell()
        return sizes

    def _path(self, name: str) -> Path:
        return report_path(self.directory, name, compress=self.compress)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


@contextmanager
def _text(raw: IO[bytes], *, compress: bool) -> Iterator[IO[str]]:
    """`raw` as text, in one new gzip member when compressed; closed without closing `raw`."""
    binary: Any = (
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=COMPRESS_LEVEL) if compress else raw
    )
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=False)
    try:
        yield text
    finally:
        text.flush()
        text.detach()
        if compress:
            binary.close()
