"""Dump threads from an Assistants-compatible server into the canonical export layout.

One file per thread, `<out_dir>/<thread_id>.json` (layout: `adapters.assistants.export`).
Each file is written to a temporary name and renamed into place, so a file that exists is
complete; a second run skips those threads and fetches only the rest (resume after a crash,
a rate limit or a flaky network).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import openai
from pydantic import BaseModel, Field

from adapters.assistants.live import (
    AssistantsLiveSource,
    ThreadFetchError,
    invalid_thread_id_message,
    valid_thread_id,
)
from adapters.assistants.timeline import SOURCE_KIND
from adapters.config import AssistantsLiveSourceConfig
from adapters.model import SourceFailure

logger = logging.getLogger(__name__)


class ExportProgress(BaseModel):
    """One thread done: what happened to it, and how far the export is."""

    thread_id: str
    status: Literal["written", "skipped", "failed"]
    done: int
    total: int


class ExportSummary(BaseModel):
    """What `export_threads` did; `total = written + skipped + failed`."""

    out_dir: str
    total: int = 0
    written: int = 0
    skipped: int = 0
    """Threads whose file already existed (an earlier, interrupted or finished export)."""
    failed: int = 0
    failures: list[SourceFailure] = Field(default_factory=list)


ProgressCallback = Callable[[ExportProgress], None]


def thread_file(out_dir: Path, thread_id: str) -> Path:
    """Where the export of `thread_id` (a valid id: `valid_thread_id`) lives."""
    return out_dir / f"{thread_id}.json"


def export_threads(
    config: AssistantsLiveSourceConfig,
    out_dir: Path,
    progress: ProgressCallback | None = None,
    *,
    client: openai.OpenAI | None = None,
) -> ExportSummary:
    """Write every configured thread to `out_dir`, skipping threads already exported.

    Raises:
        SourceOpenError: No thread ids, unreadable id source, or credentials refused.
    """
    source = AssistantsLiveSource(config, client=client)
    thread_ids = source.thread_ids()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out_dir=str(out_dir), total=len(thread_ids))
    for done, thread_id in enumerate(thread_ids, start=1):
        status = _export_one(source, out_dir, thread_id, summary)
        if progress is not None:
            progress(
                ExportProgress(thread_id=thread_id, status=status, done=done, total=len(thread_ids))
            )
    return summary


def _export_one(
    source: AssistantsLiveSource, out_dir: Path, thread_id: str, summary: ExportSummary
) -> Literal["written", "skipped", "failed"]:
    if not valid_thread_id(thread_id):
        message = invalid_thread_id_message(thread_id)
        return _failed(summary, source, thread_id, "invalid_thread_id", message)
    path = thread_file(out_dir, thread_id)
    if _is_complete(path, thread_id):
        summary.skipped += 1
        return "skipped"
    try:
        document = source.fetch_document(thread_id)
    except ThreadFetchError as exc:
        return _failed(summary, source, thread_id, exc.code, exc.message)
    _write_atomically(path, document)
    summary.written += 1
    logger.debug("exported thread %s to %s", thread_id, path)
    return "written"


def _failed(
    summary: ExportSummary, source: AssistantsLiveSource, thread_id: str, code: str, message: str
) -> Literal["failed"]:
    logger.warning("thread %s not exported: %s", thread_id, message)
    summary.failed += 1
    summary.failures.append(
        SourceFailure(
            source_kind=SOURCE_KIND,
            location=source.location(thread_id),
            code=code,
            message=message,
            conversation_id=thread_id,
        )
    )
    return "failed"


def _is_complete(path: Path, thread_id: str) -> bool:
    """An existing file counts only if it parses and holds this thread."""
    if not path.exists():
        return False
    try:
        with path.open("rb") as file:
            document: Any = json.load(file)
    except (OSError, ValueError):
        logger.warning("%s is unreadable; exporting thread %s again", path, thread_id)
        return False
    thread = document.get("thread") if isinstance(document, dict) else None
    return isinstance(thread, dict) and thread.get("id") == thread_id and "messages" in document


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False, indent=1)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
