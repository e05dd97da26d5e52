"""Assistants export files and directories, framed as every JSON source is.

A directory is read file by file (`*.json`, `*.jsonl`, sorted by path, hidden files skipped), so
memory is bounded by the largest single file. Each file is framed by `adapters.json.stream`
before anything is parsed: a JSONL line, an item of an array of thread documents, or a file's
one document that is malformed, not UTF-8 or nested too deeply fails alone (`malformed_json`,
`invalid_utf8`), named by line or byte offset, and reading goes on; `total` counts each of
them once. An array of messages (with runs and steps) is one thread: a bad item fails that
thread. A lone UTF-16 surrogate fails its thread (`lone_surrogate`) or, under
`lone_surrogates = "replace"`, becomes U+FFFD (`lone_surrogate_replaced`). The shapes
themselves are `adapters.assistants.export`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from adapters.assistants.export import (
    ThreadOrder,
    document_records,
    failure,
    is_thread_document,
)
from adapters.base import SurrogatePolicy
from adapters.json.stream import Layout, RawFailure, iter_raw_records, sniff_layout
from adapters.model import SourceRecord

logger = logging.getLogger(__name__)


def read_export(
    path: Path, thread_order: ThreadOrder = "auto", lone_surrogates: SurrogatePolicy = "fail"
) -> Iterator[SourceRecord]:
    """Yield one conversation (or failure) per thread in a file or a directory of files.

    `thread_order` states the order saved message lists are in (`asc`, `desc`); `auto` lets
    timestamps decide and otherwise assumes what the shape implies (see
    `adapters.assistants.export`). `lone_surrogates` fails a thread holding a lone UTF-16
    surrogate, or replaces it by U+FFFD.
    """
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if _is_export_file(p, path)):
            yield from _read_file(file, thread_order, lone_surrogates)
    else:
        yield from _read_file(path, thread_order, lone_surrogates)


def _is_export_file(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    hidden = any(part.startswith(".") for part in relative.parts)
    return path.is_file() and not hidden and path.suffix in (".json", ".jsonl")


def _read_file(path: Path, order: ThreadOrder, policy: SurrogatePolicy) -> Iterator[SourceRecord]:
    display = str(path)
    try:
        layout = sniff_layout(path)
    except OSError as exc:
        yield failure(display, "unreadable_file", f"cannot read {path}: {exc.strerror or exc}")
        return
    if layout is Layout.EMPTY:
        logger.warning("%s is empty: no thread in it", display)
        return
    raws = iter_raw_records(
        path,
        display=display,
        relname=path.name,
        layout=layout,
        one_record=lambda first: not is_thread_document(first),
    )
    for raw in raws:
        if isinstance(raw, RawFailure):
            yield failure(raw.location, raw.code, raw.message)
        else:
            yield from document_records(raw.value, raw.location, order, policy)
