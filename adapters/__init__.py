"""Readers for legacy chat history; each yields the neutral model of `adapters.model`.

Choose a reader with `open_source(config)`, where `config` is one member of the `SourceConfig`
union. Readers stream: memory does not grow with the size of the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from adapters.config import (
    AssistantsLiveSourceConfig,
    JsonSourceConfig,
    SourceConfig,
    SqlSourceConfig,
)
from adapters.model import SourceRecord

__all__ = [
    "AssistantsLiveSourceConfig",
    "JsonSourceConfig",
    "Source",
    "SourceConfig",
    "SourceOpenError",
    "SqlSourceConfig",
    "open_source",
]


class SourceOpenError(Exception):
    """The source cannot be opened at all (missing file, bad URL, unknown format)."""


class Source(Protocol):
    """A legacy store of conversations, read in a stable order."""

    def describe(self) -> str:
        """A one-line, secret-free description for logs and reports."""
        ...

    def read(self) -> Iterator[SourceRecord]:
        """Yield every conversation (or the failure to read one), in a stable order."""
        ...


def open_source(config: SourceConfig) -> Source:
    """Return the reader for `config`; raises `SourceOpenError` if it cannot be opened."""
    match config:
        case JsonSourceConfig():
            from adapters.json_files import JsonFilesSource

            return JsonFilesSource(config)
        case SqlSourceConfig():
            from adapters.sql_tables import SqlTableSource

            return SqlTableSource(config)
        case AssistantsLiveSourceConfig():
            from adapters.assistants_live import AssistantsLiveSource

            return AssistantsLiveSource(config)
