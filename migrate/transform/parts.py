"""Pure helpers of the transform for content parts: output text and readable descriptions."""

from __future__ import annotations

import logging
from typing import Any

from adapters.model import (
    AudioPart,
    FilePart,
    ImagePart,
    Part,
)

logger = logging.getLogger(__name__)


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def describe_attachment(part: ImagePart | FilePart) -> str:
    if isinstance(part, ImagePart):
        if part.file_id:
            return f"image: file {part.file_id}"
        if part.url and part.url.startswith("data:"):
            return f"image: inline data, {len(part.url):,} characters"
        return f"image: {part.url or part.reference or 'unknown'}"
    name = f"{part.filename} " if part.filename else ""
    if part.file_id:
        return f"file: {name}{part.file_id}".strip()
    if part.file_url:
        return f"file: {name}{part.file_url}".strip()
    return f"file: {name}inline data".strip()


def describe_part(part: Part) -> str:
    if isinstance(part, ImagePart | FilePart):
        return describe_attachment(part)
    if isinstance(part, AudioPart):
        return f"audio: {part.transcript or part.audio_id or part.format or 'no transcript'}"
    return part.type
