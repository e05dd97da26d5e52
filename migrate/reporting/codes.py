"""Every finding and error code the engine and the readers produce, with meaning and remedy.

One registry: the HTML report, the terminal summary and `docs/codes.md` all read it, and a test
scans the source for code literals so that a new code cannot appear without an entry here.
A finding is a lossy or repairing step taken for a conversation that still migrates; an error
means the conversation (or source record) is not migrated. A few codes are both: the policy
decides (`fail` makes the finding an error).

It is long because it is a table (one entry per code), not because it does many things.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from migrate.context.models import NEAR_LIMIT_SHARE

Kind = Literal["finding", "error"]


class Code(BaseModel):
    """What one code means and what the user can do about it."""

    model_config = ConfigDict(frozen=True)

    code: str
    kinds: tuple[Kind, ...]
    meaning: str
    remedy: str


API_ERROR_PREFIX = "api_"
"""Errors `api_<code>` carry the target's own error code (or HTTP status) after the prefix."""

_F: tuple[Kind, ...] = ("finding",)
_E: tuple[Kind, ...] = ("error",)
_FE: tuple[Kind, ...] = ("finding", "error")


def _policy_choice(kind: str, key: str) -> str:
    return f"{kind}; set `policy.{key}` to `text` (keep it readable) or `drop` (accept the loss)."


_TABLE: list[tuple[str, tuple[Kind, ...], str, str]] = [
    # --- transform findings ------------------------------------------------------------------
    (
        "annotation_dropped",
        _F,
        "An annotation (citation, file path) could not be sent: a required field is unknown, or "
        "assistant text is sent as a plain string.",
        "Nothing to do if citations do not matter; with `policy.assistant_content = output_text` "
        "every complete annotation is kept.",
    ),
    (
        "assistant_image_as_text",
        _F,
        "An image or file the assistant produced became a text reference in its message.",
        "Nothing to do; upload the file separately if the app must show it.",
    ),
    (
        "assistant_image_dropped",
        _F,
        "An image or file the assistant produced was dropped (`policy.assistant_image = drop`).",
        "Set `policy.assistant_image = text` to keep a readable reference.",
    ),
    (
        "audio_as_text",
        _F,
        "An audio part was sent as its transcript, or as a placeholder when it had none.",
        "Nothing to do; the recording itself cannot be sent to a conversation.",
    ),
    (
        "audio_dropped",
        _F,
        "An audio part was dropped (`policy.audio = drop`).",
        "Set `policy.audio = text` to keep the transcript.",
    ),
    (
        "call_id_synthesized",
        _F,
        "A tool call id was missing, empty, duplicated or longer than 64 characters; a new one "
        "was made so the call and its output still pair.",
        "Nothing to do; the original id is in the finding's message.",
    ),
    (
        "citation_markers_stripped",
        _F,
        "Citation markers such as `【4:0†source】` were removed from the text.",
        "Set `policy.citation_markers = keep` to leave them in.",
    ),
    (
        "empty_message",
        _F,
        "A message with nothing to send (no text, no part) was dropped.",
        "Nothing to do: there was nothing to keep.",
    ),
    (
        "hidden_message_dropped",
        _F,
        "A message the source hid from its users (ChatGPT system or context node) was dropped.",
        "Set `policy.hidden_messages = keep` to send them too.",
    ),
    (
        "hosted_tool_as_text",
        _F,
        "A hosted tool step (code interpreter, file search, browsing) became readable assistant "
        "text: the API cannot recreate these items.",
        "Nothing to do; set `policy.hosted_tool = drop` to leave the steps out.",
    ),
    (
        "hosted_tool_dropped",
        _F,
        "A hosted tool step was dropped (`policy.hosted_tool = drop`).",
        "Set `policy.hosted_tool = text` to keep the step as readable text.",
    ),
    (
        "image_detail_replaced",
        _F,
        "An image had no valid `detail`; the policy's `image_detail` was used.",
        "Nothing to do; `policy.image_detail` chooses the value.",
    ),
    (
        "name_dropped",
        _F,
        "A message author's name has no field in the API and was left out.",
        "Nothing to do; the name is in the finding's message.",
    ),
    (
        "reasoning_as_text",
        _F,
        "Reasoning was sent as assistant text (`policy.reasoning = text`).",
        "Set `policy.reasoning = drop` if the reasoning must not appear in the history.",
    ),
    (
        "reasoning_dropped",
        _F,
        "Reasoning (or encrypted reasoning) was dropped: it cannot be recreated on the target.",
        "Set `policy.reasoning = text` to keep readable reasoning as assistant text.",
    ),
    (
        "refusal_as_text",
        _F,
        "A refusal was sent as text (the default, `policy.refusal = text`).",
        "Set `policy.refusal = part` to send a `refusal` part instead.",
    ),
    (
        "refusal_dropped",
        _F,
        "A refusal was dropped (`policy.refusal = drop`).",
        "Set `policy.refusal = text` to keep it.",
    ),
    (
        "tool_output_paired_by_order",
        _F,
        "A tool output without a call id was paired with the oldest unanswered call.",
        "Check the conversation in the viewer if tool pairing matters; give outputs call ids.",
    ),
    (
        "tool_part_as_text",
        _F,
        "An image or file inside a tool output was sent as a text description.",
        "Nothing to do; a tool output can only carry text.",
    ),
    (
        "unresolved_image_as_text",
        _F,
        "An image the source only points at (asset pointer, local path) became a text reference.",
        "Upload the images and point the source at their URLs or file ids, then plan again.",
    ),
    (
        "unresolved_image_dropped",
        _F,
        "An image the source only points at was dropped (`policy.unresolved_image = drop`).",
        "Set `policy.unresolved_image = text` to keep a reference.",
    ),
    (
        "source_id_hashed",
        _F,
        "The source id is longer than 512 characters; metadata `source_id` holds its sha256.",
        "Use the id map (`conversations.csv`) to find the conversation by its full id.",
    ),
    (
        "metadata_truncated",
        _F,
        "Metadata beyond 16 pairs, 64-character keys or 512-character values did not fit; what "
        "was left out is named in the finding's message and its values are in the finding's "
        "`value`.",
        "Keep fewer metadata fields in the source if they matter, or rely on the report.",
    ),
    (
        "item_timestamps_in_report",
        _F,
        "The source has a timestamp per message, and API items have none (only the conversation "
        "has a `created_at`, set by the server). Each item's source timestamp is kept in the "
        "report's `items.csv` (`source_created_at`, ISO 8601 UTC); the finding names the "
        "source's field and its first and last value. One finding per conversation.",
        "Nothing to do: join `items.csv` on `target_item_id` where the app shows message times.",
    ),
    # --- findings and errors by policy -------------------------------------------------------
    (
        "orphan_tool_output",
        _FE,
        "A tool output matched no call: sent as a readable assistant message, dropped, or (with "
        "`fail`) the conversation failed.",
        _policy_choice("Nothing to do with the default", "orphan_tool_output"),
    ),
    (
        "tool_call_without_output",
        _FE,
        "A tool call was never answered: paired with an empty output (default), sent as text, "
        "dropped, or (with `fail`) the conversation failed.",
        "Nothing to do with the default; `policy.tool_call_without_output` chooses.",
    ),
    (
        "unknown_role",
        _FE,
        "A role the API lacks and no rule maps: sent as user text (`policy.unknown_role = user`), "
        "or the conversation failed (default).",
        "Set `policy.unknown_role = user` to send such messages as user text.",
    ),
    # --- errors a policy of `fail` raises ----------------------------------------------------
    (
        "refusal",
        _E,
        "A refusal, and `policy.refusal = fail`.",
        "Set `policy.refusal` to `text`, `part` or `drop`.",
    ),
    (
        "hosted_tool",
        _E,
        "A hosted tool step, and `policy.hosted_tool = fail`.",
        _policy_choice("Decide how to keep the step", "hosted_tool"),
    ),
    (
        "reasoning",
        _E,
        "Reasoning, and `policy.reasoning = fail`.",
        _policy_choice("Decide how to keep reasoning", "reasoning"),
    ),
    (
        "assistant_image",
        _E,
        "An assistant-authored image or file, and `policy.assistant_image = fail`.",
        _policy_choice("Decide how to keep it", "assistant_image"),
    ),
    (
        "audio",
        _E,
        "An audio part, and `policy.audio = fail`.",
        _policy_choice("Decide how to keep it", "audio"),
    ),
    (
        "unresolved_image",
        _E,
        "An image the source only points at, and `policy.unresolved_image = fail`.",
        _policy_choice("Decide how to keep it", "unresolved_image"),
    ),
    # --- errors of the transform and the plan ------------------------------------------------
    (
        "invalid_content",
        _E,
        "A part carries nothing sendable: an image without URL, file id or reference, a file "
        "without id, data or URL, or file data without a filename.",
        "Fix the record at the location shown, then plan again.",
    ),
    (
        "message_too_large",
        _E,
        "A single text is larger than `policy.max_text_chars`.",
        "Split the message in the source, or raise `policy.max_text_chars` if the target allows.",
    ),
    (
        "invalid_item",
        _E,
        "A planned item breaks a limit of the Conversations API (the message names it).",
        "Fix the record at the location shown; the message says which field.",
    ),
    (
        "invalid_metadata",
        _E,
        "The conversation metadata breaks a limit of the Conversations API.",
        "Fix the record's metadata at the location shown.",
    ),
    # --- context fit (`migrate.context`) ------------------------------------------------------
    (
        "context_over_limit",
        _FE,
        "The conversation's input tokens exceed the model's input limit (`policy.model`, or "
        "`policy.context_limit`): migrated whole (`policy.oversize = keep`), or failed "
        "(`fail`, or `keep_recent` when not even its newest item fits).",
        "Continue it with compaction enabled, or plan with `policy.oversize = keep_recent` to "
        "migrate only its newest items.",
    ),
    (
        "context_trimmed",
        _F,
        "Over the input limit, only the newest items that fit were migrated "
        "(`policy.oversize = keep_recent`); the dropped source entries are in the message.",
        "Nothing to do if the old turns may go; otherwise set `policy.oversize = keep`.",
    ),
    (
        "context_near_limit",
        _F,
        f"The conversation uses at least {NEAR_LIMIT_SHARE:.0%} of the model's input limit: the "
        "next turns of the app may not fit.",
        "Nothing to do now; continue it with compaction enabled.",
    ),
    # --- errors of the readers: files --------------------------------------------------------
    (
        "unreadable_file",
        _E,
        "A file could not be opened or read.",
        "Check the path and its permissions, then plan again.",
    ),
    (
        "unknown_format",
        _E,
        "A file's format could not be recognised.",
        "Name it with `--format` (or `format` in the job file).",
    ),
    (
        "invalid_record",
        _E,
        "A record has a value of an unexpected type.",
        "Fix the record at the file and line shown.",
    ),
    (
        "invalid_utf8",
        _E,
        "A JSONL line, an array item or a file's one value holds bytes that are not UTF-8 "
        "(the byte offset is shown); the other records are read.",
        "Re-encode the record as UTF-8 at the position shown, then plan again.",
    ),
    (
        "not_json",
        _E,
        "A `.json` file does not start with a JSON array or object.",
        "Fix or remove the file; the other files are read.",
    ),
    (
        "malformed_json",
        _E,
        "The JSON is malformed at the file, line and column shown.",
        "Fix the JSON at the position shown; the records before it are read.",
    ),
    (
        "not_an_object",
        _E,
        "A record is not a JSON object.",
        "Fix the record at the file and line shown, or remove it.",
    ),
    (
        "missing_messages",
        _E,
        "A record has no messages field.",
        "Name the field with `--messages-field`, or fix the record.",
    ),
    (
        "invalid_messages",
        _E,
        "A record's messages field is not an array of messages.",
        "Fix the record at the file and line shown.",
    ),
    (
        "invalid_message",
        _E,
        "A message is not an object.",
        "Fix the message at the position shown.",
    ),
    ("missing_role", _E, "A message has no role.", "Fix the message at the position shown."),
    (
        "invalid_tool_call",
        _E,
        "A tool call is malformed (not an object, or its arguments).",
        "Fix the tool call at the position shown.",
    ),
    (
        "invalid_mapping",
        _E,
        "A ChatGPT conversation's `mapping` is not an object.",
        "Re-export the conversation from ChatGPT.",
    ),
    (
        "mapping_cycle",
        _E,
        "A ChatGPT conversation's parent links loop, or it has no root.",
        "Re-export the conversation from ChatGPT.",
    ),
    (
        "mapping_missing_node",
        _E,
        "A ChatGPT conversation refers to a node it does not hold.",
        "Re-export the conversation from ChatGPT.",
    ),
    (
        "invalid_thread",
        _E,
        "An Assistants thread export does not have the expected layout.",
        "Export the thread again (`migrate export-threads`).",
    ),
    (
        "lone_surrogate",
        _E,
        "A JSON string holds a lone UTF-16 surrogate escape (such as `\\udc00`): it is not text "
        "and cannot be sent.",
        "Fix the record, or set `source.lone_surrogates = 'replace'` to migrate it with U+FFFD "
        "in its place.",
    ),
    (
        "lone_surrogate_replaced",
        _F,
        "A lone UTF-16 surrogate escape was replaced by U+FFFD "
        "(`source.lone_surrogates = 'replace'`).",
        "Nothing to do; the original escape was not text.",
    ),
    (
        "tool_output_as_json",
        _F,
        "A tool output holds parts other than text, images and files; it was sent as their "
        "JSON text.",
        "Nothing to do; a tool output can carry only text, images and files.",
    ),
    (
        "invalid_text",
        _E,
        "A SQL row holds text that is not UTF-8 (SQLite) or a JSON column with a lone UTF-16 "
        "surrogate escape; the error names the table, primary key and column.",
        "Fix the row, or set `source.lone_surrogates = 'replace'` to migrate it with U+FFFD in "
        "its place.",
    ),
    (
        "unmapped_field",
        _F,
        "A message field has no place in the Conversations API (fine-tuning `weight`, Gemini "
        "`extra_content`, Assistants message `metadata`, ChatGPT references without a web "
        "address); its value is in the finding's `value`.",
        "Nothing to do if the report is enough; otherwise keep the value elsewhere.",
    ),
    (
        "unknown_annotation",
        _F,
        "An annotation type no reader knows was not migrated; the rest of the message was. Its "
        "value is in the finding's `value`.",
        "Check the conversation in the viewer; report the type so a rule can be added.",
    ),
    (
        "partial_message_list",
        _F,
        "A stored completion's saved message page says `has_more`: only that page was read.",
        "Save every page (follow `after`) and read them all.",
    ),
    (
        "thread_order_assumed",
        _F,
        "Assistants messages share a `created_at` second, so their order comes from the saved "
        "list: newest first for lists saved from the API, oldest first for `export-threads` "
        "output.",
        "If the list was saved the other way, pass `--thread-order asc` or `desc`.",
    ),
    (
        "duplicate_source_id",
        _FE,
        "A source id was already read earlier in the job; this copy migrates as its own "
        "conversation (`keep_all`), is skipped (`first`) or fails (`fail`). The id map's "
        "`location` tells the copies apart.",
        "Remove the duplicate from the source, or set `policy.duplicate_source_id`.",
    ),
    # --- errors of the readers: databases ----------------------------------------------------
    (
        "null_conversation_key",
        _E,
        "A row has NULL in the conversation key column.",
        "Fix or delete the row shown (table and key), then plan again.",
    ),
    (
        "duplicate_conversation_key",
        _E,
        "The same conversation key appears in two places the reader cannot merge.",
        "Make the key unique in the table shown.",
    ),
    (
        "bad_timestamp",
        _E,
        "A timestamp column holds a value that is not a time.",
        "Fix the value in the table and row shown.",
    ),
    (
        "null_content",
        _E,
        "A message row has NULL content.",
        "Fix the row shown, or delete it if it is not a message.",
    ),
    (
        "unexpected_json",
        _E,
        "A JSON column does not have the shape the preset expects.",
        "Check `--preset` matches the table; fix the row shown.",
    ),
    (
        "unknown_content",
        _E,
        "A content part or annotation type is not understood.",
        "Fix the row shown, or report the type so a rule can be added.",
    ),
    # --- errors of the readers: live Assistants ----------------------------------------------
    (
        "thread_not_found",
        _E,
        "A thread id was not found on the Assistants server.",
        "Check the thread id list.",
    ),
    (
        "thread_fetch_failed",
        _E,
        "A thread could not be fetched from the Assistants server.",
        "Run the export again; failed threads are retried.",
    ),
    (
        "invalid_thread_id",
        _E,
        "A thread id in the list is not a valid thread id.",
        "Fix the thread id list.",
    ),
    # --- Responses histories and chains (`adapters.responses`) --------------------------------
    (
        "response_not_found",
        _E,
        "A listed response id is gone from the Responses API: expired after the 30-day "
        "retention, or deleted.",
        "Nothing can bring it back; if the app kept its items, migrate them from its own storage.",
    ),
    (
        "response_fetch_failed",
        _E,
        "A response or a page of its input items could not be read from the server.",
        "Run `migrate export-responses` again; what was written is skipped.",
    ),
    (
        "invalid_response_id",
        _E,
        "An id in the response id file is not a valid response id.",
        "Fix the response id file.",
    ),
    (
        "instructions_dropped",
        _F,
        "A history's `instructions` were dropped (`source.responses_instructions = drop`).",
        "Set `source.responses_instructions = developer` to keep them as a developer message.",
    ),
    (
        "image_not_returned",
        _F,
        "An image in a Responses history has no URL or file id: the API lists an image by URL "
        "only with `include=message.input_image.image_url`, and never returns inline data.",
        "Export with `migrate export-responses` (it asks for the URLs); inline images are lost "
        "on the server's side.",
    ),
    (
        "file_data_not_returned",
        _F,
        "A file in a Responses history has only its name: the API never returns inline "
        "`file_data`. It is sent as a text reference.",
        "Upload the file and send it by file id if the conversation needs it.",
    ),
    (
        "inline_image_not_sent",
        _F,
        "Inline image data in a hosted-tool item (an image generation result, a screenshot "
        "data URL) was left out of its readable text.",
        "Set `policy.provider_items = keep` for a migration into the same project.",
    ),
    (
        "logprobs_dropped",
        _F,
        "Token logprobs of an assistant text were dropped: items cannot carry them.",
        "Nothing to do.",
    ),
    (
        "phase_dropped",
        _F,
        "A message's `phase` (commentary, final answer) was dropped.",
        "Nothing to do.",
    ),
    (
        "namespace_dropped",
        _F,
        "A tool call's `namespace` was dropped; the call keeps its name.",
        "Nothing to do, unless the app tells tools apart by namespace.",
    ),
    (
        "tool_output_part_as_text",
        _F,
        "A tool output part other than text (an image, a file) became a text reference.",
        "Nothing to do.",
    ),
    (
        "compaction_trigger_dropped",
        _F,
        "A `compaction_trigger` item (a request to compact, not history) was dropped.",
        "Nothing to do.",
    ),
    (
        "unknown_item_as_text",
        _F,
        "An item type outside the Responses item union was sent as readable text.",
        "Report the type so a rule can be added.",
    ),
    (
        "compaction_dropped",
        _F,
        "A `compaction` item (encrypted, with no readable form) was dropped.",
        "Set `policy.provider_items = keep` for a migration into the same project.",
    ),
    (
        "item_reference_unresolved",
        _F,
        "An `item_reference` names an item that is not in the same history; it was dropped.",
        "Set `policy.provider_items = keep` for a migration into the same project.",
    ),
    (
        "reasoning_content_dropped",
        _F,
        "With `policy.reasoning = keep`, plain reasoning text beside encrypted content was "
        "dropped: the API refuses the two together.",
        "Nothing to do; the encrypted content carries the reasoning.",
    ),
    # --- notes of the readers (findings) -----------------------------------------------------
    (
        "branch_not_migrated",
        _F,
        "Other branches of a ChatGPT conversation (edits, regenerations) were not migrated.",
        "Set `source.chatgpt_branches = 'all'` (or `--all-branches`) to migrate every branch.",
    ),
    (
        "media_not_migrated",
        _F,
        "A ChatGPT audio or video recording lives in the export zip and cannot be sent; any "
        "transcript is kept as text.",
        "Nothing to do; keep the export zip for the recordings.",
    ),
    (
        "unknown_content_type",
        _F,
        "A ChatGPT content type is not understood; its text was kept, or it was skipped.",
        "Check the conversation in the viewer; report the type so a rule can be added.",
    ),
    (
        "unknown_part_type",
        _F,
        "A chat-completions content part type is not understood; its text was kept if any.",
        "Check the conversation in the viewer; report the type so a rule can be added.",
    ),
    (
        "tools_unparsed",
        _F,
        "A ShareGPT `tools` string is not valid JSON; kept as text.",
        "Fix the tools string in the source if the definitions matter.",
    ),
    (
        "image_missing",
        _F,
        "A ShareGPT `<image>` token has no matching image; kept as text.",
        "Add the missing image path to the record.",
    ),
    (
        "image_without_token",
        _F,
        "ShareGPT images without an `<image>` token were attached to the first user turn.",
        "Add `<image>` tokens where the images belong.",
    ),
    (
        "empty_call_id",
        _F,
        "An Agents SDK tool call or output has an empty call id; calls and outputs were paired "
        "by order.",
        "Nothing to do; check the conversation if tool pairing matters.",
    ),
    (
        "export_page_incomplete",
        _F,
        "A saved Assistants page says `has_more`; what the later pages held is not in the export.",
        "Export the thread again with every page (`migrate export-threads`).",
    ),
    (
        "run_step_message_missing",
        _F,
        "An Assistants run step created a message that is not in the thread; its tool steps were "
        "placed by time.",
        "Nothing to do; the order may differ slightly from the original.",
    ),
    # --- errors of the run -------------------------------------------------------------------
    (
        "retries_exhausted",
        _E,
        "The target kept failing for this conversation; the retry budget ran out.",
        "`migrate resume` tries it again; raise `--retry-budget` if needed.",
    ),
    (
        "target_missing",
        _E,
        "The conversation no longer exists on the target.",
        "It was deleted there; `migrate rollback` the job and run it again.",
    ),
    (
        "target_rejected",
        _E,
        "The target refused to list the conversation's items.",
        "Check the job points at the right target and key.",
    ),
    (
        "source_diverged",
        _FE,
        "`migrate sync`: a message that already landed in the target changed or vanished in the "
        "source, so the conversation cannot be brought up to date by appending.",
        "Restore the source, or sync with `--diverged new_conversation` (migrates it again as a "
        "new conversation; the old one stays) or `--diverged fail`; the default skips it.",
    ),
    (
        "target_diverged",
        _E,
        "The conversation on the target holds what no write of the job explains (someone else "
        "wrote into it: an item that is not in the plan, or a landed item gone, changed or "
        "moved); nothing was deleted. A copy of a planned item that a late write left is not "
        "this: the audit deletes it.",
        "Check it, then `migrate rollback` or fix it by hand.",
    ),
    (
        "missing_from_source",
        _E,
        "A conversation of the job is no longer in the source.",
        "Restore the source, or resume with `--no-source-check` to replay the stored plans.",
    ),
    (
        "not_replanned",
        _E,
        "Internal to `resume`: a conversation the job already migrated was read again but not "
        "planned (its source is not compared again); it never appears in a report.",
        "Nothing to do; `migrate sync` compares migrated conversations with the source.",
    ),
    (
        "source_changed",
        _E,
        "A conversation already in progress changed in the source since it was planned; "
        "`resume` sent nothing more to it.",
        "Restore the source as it was and resume again (the conversation is retried), or "
        "roll the job back and start a new run.",
    ),
]

CODES: dict[str, Code] = {
    code: Code(code=code, kinds=kinds, meaning=meaning, remedy=remedy)
    for code, kinds, meaning, remedy in _TABLE
}

_API_ERROR = Code(
    code=f"{API_ERROR_PREFIX}*",
    kinds=_E,
    meaning="The target rejected a request (HTTP 400-class); the rest of the code is the "
    "target's own error code or the HTTP status.",
    remedy="Read the message: fix the source or the policy, then migrate the conversation again.",
)


def describe(code: str) -> Code:
    """The entry for `code`; an `api_*` code gets the family entry, an unknown one a stub."""
    if code in CODES:
        return CODES[code]
    if code.startswith(API_ERROR_PREFIX):
        return _API_ERROR.model_copy(update={"code": code})
    return Code(code=code, kinds=_E, meaning="Not documented.", remedy="See the message.")


def all_codes() -> list[Code]:
    """Every registered code, the `api_*` family last."""
    return [*sorted(CODES.values(), key=lambda entry: entry.code), _API_ERROR]
