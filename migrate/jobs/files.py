"""The job directory's files: one atomic writer, and one schema per file name.

`plan` and `report` write files of the same names (`findings.jsonl`, `errors.jsonl`,
`summary.json`); the rows come from `finding_row` and `error_row` here, so a file means the same
whichever verb wrote it. Every file is written under a temporary name and renamed into place
when complete: a reader (or a crash) never sees half a file.

A path ending in `.gz` is written gzip-compressed (`--compress`, `report_path`); a table is
then in one form only: writing `items.csv.gz` removes an older `items.csv`, and the other way
round. `open_report` reads whichever form is there.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from migrate.transform.findings import ErrorRecord, Finding

GZIP = ".gz"
COMPRESS_LEVEL = 6
"""zlib's default: nearly the smallest files at a fraction of level 9's time."""


def report_path(directory: Path, name: str, *, compress: bool) -> Path:
    """`directory/name`, with `.gz` when the report files are compressed."""
    return directory / (name + GZIP if compress else name)


def existing_report(directory: Path, name: str) -> Path | None:
    """`directory/name` or `directory/name.gz`, whichever exists (None: neither)."""
    for path in (directory / name, directory / (name + GZIP)):
        if path.exists():
            return path
    return None


def open_report(path: Path) -> IO[str]:
    """A report file for reading as text, plain or (by its `.gz` name) compressed.

    `path` may name either form: `items.csv` reads `items.csv.gz` when only that exists.
    """
    plain = path.with_name(path.name.removesuffix(GZIP))
    found = existing_report(plain.parent, plain.name)
    if found is None:
        raise FileNotFoundError(f"no {plain.name} (or {plain.name}{GZIP}) in {plain.parent}")
    if found.name.endswith(GZIP):
        return gzip.open(found, "rt", encoding="utf-8", newline="")
    return found.open(encoding="utf-8", newline="")


def _other_form(path: Path) -> Path:
    name = path.name
    return path.with_name(name.removesuffix(GZIP) if name.endswith(GZIP) else name + GZIP)


def _open_for_writing(temporary: Path, final: Path, newline: str | None) -> IO[str]:
    if final.name.endswith(GZIP):
        return gzip.open(
            temporary, "wt", encoding="utf-8", newline=newline, compresslevel=COMPRESS_LEVEL
        )
    return temporary.open("w", encoding="utf-8", newline=newline)


def _put_in_place(temporary: Path, path: Path) -> None:
    os.replace(temporary, path)
    _other_form(path).unlink(missing_ok=True)


@contextmanager
def atomic_text(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file written under a temporary name and renamed into place when complete."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with _open_for_writing(temporary, path, newline) as file:
            yield file
        _put_in_place(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """The whole file at once, atomically."""
    with atomic_text(path) as file:
        file.write(text)
    return path


def write_csv(path: Path, fields: list[str], rows: Iterable[dict[str, Any]]) -> Path:
    """A CSV file with a header row; None becomes an empty cell."""
    with atomic_text(path, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return path


def write_json_lines(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    with atomic_text(path) as file:
        for row in rows:
            file.write(json_line(row))
    return path


def json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


class JsonLinesFile:
    """A JSON Lines file written row by row under a temporary name, renamed into place on `close`.

    With no path nothing is written, but the size it would have is still counted (the plan's
    disk estimate uses it); a `.gz` path is written compressed (`size` stays uncompressed).
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._temporary = None if path is None else path.with_name(f".{path.name}.tmp")
        self._file = (
            None
            if self._temporary is None or path is None
            else _open_for_writing(self._temporary, path, None)
        )
        self.size = 0
        """Bytes written (or that would have been)."""

    def write(self, row: dict[str, Any]) -> None:
        line = json_line(row)
        self.size += len(line.encode("utf-8"))
        if self._file is not None:
            self._file.write(line)

    def close(self, *, complete: bool = True) -> None:
        """Put the file in place (`complete`), or drop what was written."""
        if self._file is None or self._path is None or self._temporary is None:
            return
        self._file.close()
        self._file = None
        if complete:
            _put_in_place(self._temporary, self._path)
        else:
            self._temporary.unlink(missing_ok=True)


def finding_row(finding: Finding, location: str | None) -> dict[str, Any]:
    """A `findings.jsonl` row: the transform's finding, with the report's id names."""
    row = finding.model_dump(mode="json")
    return {
        "code": row.pop("code"),
        "source_id": row.pop("conversation_id"),
        "source_item_id": row.pop("source_id"),
        "location": location,
        **row,
    }


class ErrorRow(BaseModel):
    """An `errors.jsonl` row (and an entry of a plan summary's `errors`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str
    location: str
    source_id: str | None
    """The source conversation's id."""
    source_item_id: str | None
    """The source message's, when one message is the cause."""
    target_conversation_id: str | None
    hint: str | None
    retryable: bool


def error_row(
    error: ErrorRecord, *, target_conversation_id: str | None = None, retryable: bool = False
) -> dict[str, Any]:
    """An `errors.jsonl` row: why a source record was not migrated, with the report's id names."""
    return {
        "code": error.code,
        "message": error.message,
        "location": error.location,
        "source_id": error.conversation_id,
        "source_item_id": error.source_id,
        "target_conversation_id": target_conversation_id,
        "hint": error.hint,
        "retryable": retryable,
    }
