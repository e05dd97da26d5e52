"""The conversation viewer's data: a source conversation and the items planned for it.

Each source entry is shown beside the items it became; an entry is lossy when a finding names
it (by source id) or when it produced no item at all (dropped). Texts are cut to
`MAX_TEXT_CHARS` so that a sample of huge conversations still makes a small page.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from adapters.model import (
    AudioPart,
    Entry,
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    Part,
    ProviderItem,
    Reasoning,
    RefusalPart,
    SourceConversation,
    TextPart,
    ToolCall,
    ToolResult,
)
from migrate.plan.model import ConversationPlan
from migrate.transform.findings import ErrorRecord

MAX_SAMPLES = 30
MAX_TEXT_CHARS = 500
MAX_ENTRIES = 40
"""Entries (and items) shown per conversation; the rest are counted, not shown."""


class ShownEntry(BaseModel):
    index: int
    label: str
    text: str
    lossy: list[str] = Field(default_factory=list)
    """Codes of the findings that name this entry; `dropped` when it produced no item."""


class ShownItem(BaseModel):
    entry_index: int
    label: str
    text: str
    lossy: bool = False


class Sample(BaseModel):
    seq: int | None = None
    """Place in source order (the state store's `seq`)."""
    source_id: str | None
    location: str
    status: str
    """`planned`, `skipped` or `failed` when sampled; a run's report shows its final status."""
    error_code: str | None = None
    error_message: str | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    entries: list[ShownEntry] = Field(default_factory=list)
    items: list[ShownItem] = Field(default_factory=list)
    entries_total: int = 0
    items_total: int = 0


def sample_from(
    source: SourceConversation | None, outcome: ConversationPlan | ErrorRecord
) -> Sample:
    """The viewer's view of one conversation (`source` is None for an unreadable record)."""
    if isinstance(outcome, ErrorRecord):
        sample = Sample(
            source_id=outcome.conversation_id,
            location=outcome.location,
            status="failed",
            error_code=outcome.code,
            error_message=_cut(outcome.message),
        )
        if source is not None:
            sample.entries = [
                ShownEntry(index=i, label=_label(entry), text=_entry_text(entry))
                for i, entry in enumerate(source.entries[:MAX_ENTRIES])
            ]
            sample.entries_total = len(source.entries)
        return sample
    produced = {planned.entry_index for planned in outcome.items}
    by_source: dict[str, list[str]] = {}
    for finding in outcome.findings:
        if finding.source_id is not None:
            by_source.setdefault(finding.source_id, []).append(finding.code)
    entries: list[ShownEntry] = []
    lossy_indexes: set[int] = set()
    for index, entry in enumerate(source.entries if source is not None else []):
        codes = sorted(set(by_source.get(entry.source_id or "", [])))
        if index not in produced:
            codes.append("dropped")
        if codes:
            lossy_indexes.add(index)
        if index < MAX_ENTRIES:
            entries.append(
                ShownEntry(index=index, label=_label(entry), text=_entry_text(entry), lossy=codes)
            )
    items = [
        ShownItem(
            entry_index=planned.entry_index,
            label=_item_label(planned.item),
            text=_cut(_item_text(planned.item)),
            lossy=planned.entry_index in lossy_indexes,
        )
        for planned in outcome.items[:MAX_ENTRIES]
    ]
    return Sample(
        source_id=outcome.source_id,
        location=outcome.location,
        status="planned" if outcome.items else "skipped",
        findings=[
            {"code": f.code, "message": _cut(f.message), "source_id": f.source_id}
            for f in outcome.findings[:MAX_ENTRIES]
        ],
        entries=entries,
        items=items,
        entries_total=len(source.entries) if source is not None else 0,
        items_total=len(outcome.items),
    )


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + " …"


def _label(entry: Entry) -> str:
    match entry:
        case Message():
            return entry.role + (" (hidden)" if entry.hidden else "")
        case ToolCall():
            return f"tool call {entry.name}"
        case ToolResult():
            return "tool result" + (f" {entry.name}" if entry.name else "")
        case HostedToolStep():
            return f"hosted {entry.tool}"
        case Reasoning():
            return "reasoning"
        case ProviderItem():
            return f"provider item {entry.item.get('type', 'item_reference')}"


def _entry_text(entry: Entry) -> str:
    match entry:
        case Message():
            text = "\n".join(_part_text(part) for part in entry.parts)
        case ToolCall():
            text = entry.arguments
        case ToolResult():
            text = entry.output
        case HostedToolStep():
            text = "\n".join([entry.input or "", *entry.outputs]).strip()
        case Reasoning():
            text = "[encrypted]" if entry.encrypted else entry.text or ""
        case ProviderItem():
            text = json.dumps(entry.item, ensure_ascii=False)
    return _cut(text)


def _part_text(part: Part) -> str:
    match part:
        case TextPart():
            return part.text
        case RefusalPart():
            return f"[refusal] {part.refusal}"
        case ImagePart():
            return f"[image {part.url or part.file_id or part.reference or ''}]"[:200]
        case FilePart():
            return f"[file {part.filename or part.file_id or part.file_url or ''}]"
        case AudioPart():
            return f"[audio] {part.transcript or ''}"


def _item_label(item: dict[str, Any]) -> str:
    kind = str(item.get("type", "item"))
    return f"{kind} {item['role']}" if "role" in item else kind


def _item_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict):
                texts.append(
                    str(part.get("text") or part.get("refusal") or f"[{part.get('type')}]")
                )
        return "\n".join(texts)
    for key in ("arguments", "output"):
        if key in item:
            return str(item[key])
    return json.dumps(item, ensure_ascii=False)[:MAX_TEXT_CHARS]
