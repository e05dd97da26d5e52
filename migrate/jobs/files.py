"""The job directory's files: one atomic writer, and one schema per file name.

`plan` and `report` write files of the same names (`findings.jsonl`, `errors.jsonl`,
`summary.json`); the rows come from `finding_row` and `error_row` here, so a file means the same
whichever verb wrote it. Every file is written under a temporary name and renamed into place
when complete: a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from migrate.transform.findings import ErrorRecord, Finding


@contextmanager
def atomic_text(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A text file written under a temporary name and renamed into place when complete."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline=newline) as file:
            yield file
        os.replace(temporary, path)
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
    disk estimate uses it).
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._temporary = None if path is None else path.with_name(f".{path.name}.tmp")
        self._file = (
            None if self._temporary is None else self._temporary.open("w", encoding="utf-8")
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
            os.replace(self._temporary, self._path)
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
