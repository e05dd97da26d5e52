"""Annotations: the source's citations as the API's annotation objects, and their marker text."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from adapters.model import (
    Annotation,
)

logger = logging.getLogger(__name__)


def describe_annotation(annotation: Annotation) -> str:
    return json.dumps(annotation.model_dump(exclude_none=True), ensure_ascii=False, sort_keys=True)


def map_annotation(annotation: Annotation) -> tuple[dict[str, Any] | None, list[str]]:
    """The API annotation, or None and the names of the required fields the source lacks."""
    a = annotation
    index = a.index if a.index is not None else a.start_index
    fields: dict[str, Any]
    match a.kind:
        case "file_citation":
            fields = {"file_id": a.file_id, "filename": a.filename, "index": index}
        case "file_path":
            fields = {"file_id": a.file_id, "index": index}
        case "url_citation":
            fields = {
                "url": a.url,
                "title": a.title,
                "start_index": a.start_index,
                "end_index": a.end_index,
            }
        case "container_file_citation":
            fields = {
                "container_id": a.container_id,
                "file_id": a.file_id,
                "filename": a.filename,
                "start_index": a.start_index,
                "end_index": a.end_index,
            }
    missing = [name for name, value in fields.items() if value is None or value == ""]
    missing += [name for name, value in fields.items() if isinstance(value, int) and value < 0]
    if missing:
        return None, missing
    return {"type": a.kind, **fields}, []


def strip_markers(
    text: str, annotations: Sequence[Annotation]
) -> tuple[str, list[Annotation], int]:
    """Remove the annotations' marker text; shift their indices to the new text."""
    spans: list[tuple[int, int]] = []
    for a in annotations:
        marker = a.marker
        if not marker:
            continue
        start, end = a.start_index, a.end_index
        if start is not None and end is not None and text[start:end] == marker:
            if (start, end) not in spans:
                spans.append((start, end))
            continue
        pos = text.find(marker)
        while pos != -1 and any(s <= pos < e for s, e in spans):
            pos = text.find(marker, pos + 1)
        if pos != -1:
            spans.append((pos, pos + len(marker)))
    if not spans:
        return text, list(annotations), 0
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    pieces: list[str] = []
    cursor = 0
    for start, end in merged:
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])

    def shift(i: int | None) -> int | None:
        if i is None:
            return None
        removed = 0
        for start, end in merged:
            if i >= end:
                removed += end - start
            elif i > start:
                removed += i - start
        return i - removed

    shifted = [
        a.model_copy(
            update={
                "start_index": shift(a.start_index),
                "end_index": shift(a.end_index),
                "index": shift(a.index),
            }
        )
        for a in annotations
    ]
    return "".join(pieces), shifted, len(spans)
