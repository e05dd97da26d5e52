"""The report's CSV tables are written exactly as `csv.writer` writes them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from migrate.jobs.report import CSV_PAGE, write_csv_rows

ID = "msg_6b0f5b3c9a0dc8aff3c2f35a6e9bb519bab8a3bf9b2bf39a"


def by_csv_writer(rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue()


def written(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO(newline="")
    write_csv_rows(out, rows)
    return out.getvalue()


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [["conv-1", None, 0, ID, "conv_1", "recorded", None]],
        [["conv-1", "", 3, None, None, "pending_verify", "2025-01-01T00:00:00Z"]],
        [["a", 1, 2.5, True, False, 10**20, -0.0]],
        [["has,comma", "x"]],
        [['has "quote"', "x"]],
        [["line\nbreak", "x"], ["carriage\rreturn", "x"], ["both\r\n", "x"]],
        [[" spaced ", "\ttab", "🦊 é", "\x00", "\u2028"]],
        [[None]],
        [[""]],
        [["only"]],
        [[]],
        [["a", "b"], ["c"], ["d", "e", "f"]],
        [["a", "b,c"], ["d"]],  # as many commas as a row of the same width would have
        [["a", "b"], [None, None]],
    ],
)
def test_rows_are_written_as_csv_writer_writes_them(rows: list[list[Any]]) -> None:
    assert written(rows) == by_csv_writer(rows)


def test_a_row_that_needs_quoting_in_a_later_page() -> None:
    rows: list[list[Any]] = [["conv", str(index), index, ID] for index in range(2 * CSV_PAGE + 3)]
    rows[CSV_PAGE + 1][1] = 'quoted, "here"'
    assert written(rows) == by_csv_writer(rows)
    assert written(iter(rows)) == by_csv_writer(rows)
