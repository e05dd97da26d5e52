"""The neutral model: what every source adapter yields, whatever the legacy format.

An adapter reads its source and yields `SourceRecord`s in a stable order: a `SourceConversation`
for each conversation it could read, a `SourceFailure` for each record it could not. Nothing here
knows about the Conversations API; the engine (`migrate.transform`) decides how each entry
becomes API items and which conversions are lossy.

Provenance travels with every piece: the conversation's `location` (file and line, table and
key), each entry's `source_id` (the legacy message or item id) and `position`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- content parts -------------------------------------------------------------------------


class Annotation(_Model):
    """A citation attached to a span of text (Assistants, Responses or ChatGPT style)."""

    kind: Literal["file_citation", "file_path", "url_citation", "container_file_citation"]
    marker: str | None = None
    """The text the citation replaces or decorates in the message, e.g. `【4:0†source】`."""
    start_index: int | None = None
    end_index: int | None = None
    file_id: str | None = None
    filename: str | None = None
    index: int | None = None
    url: str | None = None
    title: str | None = None
    container_id: str | None = None
    quote: str | None = None


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str
    annotations: list[Annotation] = Field(default_factory=list)


class RefusalPart(_Model):
    type: Literal["refusal"] = "refusal"
    refusal: str


class ImagePart(_Model):
    """An image by URL (http(s) or data URL), by file id, or by a reference we cannot resolve."""

    type: Literal["image"] = "image"
    url: str | None = None
    file_id: str | None = None
    detail: str | None = None
    reference: str | None = None
    """A pointer that is not a URL or file id (ChatGPT `file-service://...`, a local path)."""


class FilePart(_Model):
    type: Literal["file"] = "file"
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class AudioPart(_Model):
    type: Literal["audio"] = "audio"
    data: str | None = None
    format: str | None = None
    audio_id: str | None = None
    transcript: str | None = None


Part = Annotated[
    TextPart | RefusalPart | ImagePart | FilePart | AudioPart, Field(discriminator="type")
]


# --- timeline entries ----------------------------------------------------------------------


class _Entry(_Model):
    source_id: str | None = None
    """The legacy id of the message, item or tool call this entry came from."""
    position: str | None = None
    """Where in the source: `line 12`, `row id=5`, `node 9f2c`, `message 3`."""
    created_at: float | None = None
    """Unix seconds, when the source has a timestamp."""
    metadata: dict[str, Any] = Field(default_factory=dict)


class Message(_Entry):
    """A message as its author wrote it.

    `role` is the source's role after the adapter's own mapping of format-specific names
    (`human` -> `user`, `gpt` -> `assistant`); a role the adapter cannot map is kept verbatim
    and the transform decides what to do with it.
    """

    kind: Literal["message"] = "message"
    role: str
    parts: list[Part] = Field(default_factory=list)
    name: str | None = None
    hidden: bool = False
    """The source hid it from its users (ChatGPT context nodes, `is_visually_hidden...`)."""


class ToolCall(_Entry):
    """A call the assistant made to a client-side tool (function or custom tool)."""

    kind: Literal["tool_call"] = "tool_call"
    call_id: str | None = None
    name: str
    arguments: str = ""
    tool_type: Literal["function", "custom"] = "function"


class ToolResult(_Entry):
    """The output of a client-side tool call, paired to its call by `call_id` when known."""

    kind: Literal["tool_result"] = "tool_result"
    call_id: str | None = None
    output: str
    """The output's text (its text parts joined when it has parts)."""
    parts: list[Part] = Field(default_factory=list)
    """The output as content parts, in order, when it holds more than text (images, files)."""
    name: str | None = None
    tool_type: Literal["function", "custom"] = "function"


class HostedToolStep(_Entry):
    """A step of a tool run by the provider (code interpreter, file search, browsing, ...).

    These cannot be recreated as API items (they need server-minted ids), so the transform
    turns them into readable text or drops them by policy.
    """

    kind: Literal["hosted_tool"] = "hosted_tool"
    tool: str
    input: str | None = None
    outputs: list[str] = Field(default_factory=list)
    file_ids: list[str] = Field(default_factory=list)
    item: dict[str, Any] | None = None
    """The source's own API item (Responses), sent as is when the policy keeps provider items."""


class Reasoning(_Entry):
    kind: Literal["reasoning"] = "reasoning"
    text: str | None = None
    encrypted: bool = False
    item: dict[str, Any] | None = None
    """The source's own reasoning item (Responses), sent as is when the policy keeps it."""


class ProviderItem(_Entry):
    """An API item with no readable form (a Responses `compaction`, an unresolved reference).

    It can only be sent as it is, with its server-minted id, into the project that made it.
    """

    kind: Literal["provider_item"] = "provider_item"
    item: dict[str, Any]


Entry = Annotated[
    Message | ToolCall | ToolResult | HostedToolStep | Reasoning | ProviderItem,
    Field(discriminator="kind"),
]


# --- records -------------------------------------------------------------------------------


class SourceNote(_Model):
    """A lossy or repairing step the adapter itself had to take; reported as a finding."""

    code: str
    message: str
    source_id: str | None = None
    count: int = 1
    value: Any = None
    """The value that did not reach the target, when there is one (see `note_value`)."""


NOTE_VALUE_CHARS = 4000
"""The most JSON text of a dropped value a note or finding carries; longer values are cut."""


NOTE_VALUE_DEPTH = 64
"""The deepest nesting a note's value keeps as JSON; a deeper value is carried as its text."""


def note_value(value: Any) -> Any:
    """`value` itself if its compact JSON fits in `NOTE_VALUE_CHARS` (and nests at most
    `NOTE_VALUE_DEPTH` deep), else that JSON text, cut and ending with `... (N more
    characters)` when longer."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except RecursionError:
        return "(a value nested too deeply to show)"
    if len(text) <= NOTE_VALUE_CHARS and _depth(value) <= NOTE_VALUE_DEPTH:
        return value
    if len(text) <= NOTE_VALUE_CHARS:
        return text
    return text[:NOTE_VALUE_CHARS] + f"... ({len(text) - NOTE_VALUE_CHARS} more characters)"


class SourceConversation(_Model):
    source_kind: str
    """Which reader produced it: `chat_completions`, `sharegpt`, `chatgpt`, `assistants`, ..."""
    id: str
    location: str
    """Where it starts in the source, e.g. `chats.jsonl:12` or `message_store session_id=7`."""
    entries: list[Entry] = Field(default_factory=list)
    title: str | None = None
    created_at: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    notes: list[SourceNote] = Field(default_factory=list)
    entry_time_field: str = "created_at"
    """The source's own name for its entries' `created_at` (`create_time` in a ChatGPT export,
    a SQL timestamp column), so that reports name the field as the source does."""


class UnreadConversation(SourceConversation):
    """A conversation read only as far as its id and location (`entries` are empty): the
    caller of the read said it needs no more of it (a resume's check of a conversation the job
    holds as migrated)."""


class SourceFailure(_Model):
    """A record the adapter could not read; the job counts it as a failed conversation."""

    source_kind: str
    location: str
    code: str
    message: str
    conversation_id: str | None = None


SourceRecord = SourceConversation | SourceFailure


def _depth(value: Any) -> int:
    """How deep lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest
