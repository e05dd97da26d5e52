"""The transform policy: what to do with each kind of content the target cannot hold as is.

Defaults keep every piece of text a human wrote or read; each choice other than a lossless
mapping produces a counted finding (see `migrate.transform`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConvertDropFail = Literal["text", "drop", "fail"]


class Policy(BaseModel):
    """Per-kind decisions of the transform; a job file's `[policy]` table sets them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assistant_content: Literal["output_text", "string"] = "output_text"
    """Assistant text as `output_text` parts (keeps annotations) or as plain string content."""
    refusal: Literal["text", "part", "drop", "fail"] = "text"
    """Refusals as assistant text, as a `refusal` part, dropped, or failing the conversation."""
    orphan_tool_output: ConvertDropFail = "text"
    """A tool output with no matching call: a readable message, dropped, or fail."""
    tool_call_without_output: Literal["empty_output", "text", "drop", "fail"] = "empty_output"
    """A tool call never answered: paired with an empty output, turned into text, ..."""
    hosted_tool: ConvertDropFail = "text"
    """Code interpreter, file search, browsing steps: readable assistant text by default."""
    reasoning: Literal["text", "drop", "fail", "keep"] = "drop"
    """Reasoning items and thoughts; they cannot be recreated, so dropped by default.

    `keep` sends a Responses reasoning item as it is (its id and encrypted content), which is
    valid only in the same organization and for the same model; one without either is dropped.
    """
    provider_items: Literal["convert", "keep"] = "convert"
    """Responses hosted-tool, `compaction` and unresolved `item_reference` items: converted
    (hosted tools by `hosted_tool`, the others dropped with a finding), or `keep`: sent as they
    are, ids included, for a migration into the same project (unverified against the live API).
    """
    assistant_image: ConvertDropFail = "text"
    """Images or files authored by the assistant become a text reference by default."""
    audio: ConvertDropFail = "text"
    """Audio parts: their transcript (or a placeholder) as text by default."""
    unresolved_image: ConvertDropFail = "text"
    """Images the source only points at (ChatGPT asset pointers, local paths)."""
    hidden_messages: Literal["keep", "drop"] = "drop"
    """Messages the source hid from its users (ChatGPT system and context nodes)."""
    unknown_role: Literal["fail", "user"] = "fail"
    """A role the API lacks and no rule maps: fail the conversation, or send it as user text."""
    citation_markers: Literal["keep", "strip"] = "keep"
    """Citation markers such as `【4:0†source】` left in the text or stripped."""
    image_detail: Literal["auto", "low", "high"] = "auto"
    """`detail` for images whose source gives none (the API requires one)."""
    duplicate_source_id: Literal["keep_all", "first", "fail"] = "keep_all"
    """A source id seen earlier in the same job: migrate every copy (each with a
    `duplicate_source_id` finding; the id map's location says which copy is which), skip the
    later copies, or fail them."""
    max_text_chars: int = 10_485_760
    """A single text larger than this fails the conversation with a clear error."""
    model: str = "gpt-5"
    """The model the app will continue the conversations with; its input limit is the limit."""
    context_limit: int | None = Field(default=None, gt=0)
    """An input limit in tokens that replaces the model's (see `migrate.context.models`)."""
    oversize: Literal["keep", "fail", "keep_recent"] = "keep"
    """A conversation over the limit: migrated whole, failed, or only its newest items."""
