"""Sources: readers that turn legacy chat history into the neutral model of `adapters.model`.

Choose a reader with `open_source(config)`, where `config` is one member of the `SourceConfig`
union. Readers stream: memory does not grow with the size of the source. Subpackages: `json`
(files), `sql` (databases), `assistants` (Assistants API threads); `chat_messages` is the one
Chat Completions message decoder both the JSON and the SQL readers use.
"""

from __future__ import annotations

from adapters.assistants.live import AssistantsLiveSource
from adapters.base import DecodeError, Source, SourceOpenError
from adapters.config import (
    AssistantsLiveSourceConfig,
    JsonSourceConfig,
    SourceConfig,
    SqlSourceConfig,
)
from adapters.json.files import JsonFilesSource
from adapters.sql.tables import SqlTableSource

__all__ = [
    "AssistantsLiveSourceConfig",
    "DecodeError",
    "JsonSourceConfig",
    "Source",
    "SourceConfig",
    "SourceOpenError",
    "SqlSourceConfig",
    "open_source",
]


def open_source(config: SourceConfig) -> Source:
    """Return the reader for `config`; raises `SourceOpenError` if it cannot be opened."""
    match config:
        case JsonSourceConfig():
            return JsonFilesSource(config)
        case SqlSourceConfig():
            return SqlTableSource(config)
        case AssistantsLiveSourceConfig():
            return AssistantsLiveSource(config)
