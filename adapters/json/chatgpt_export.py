"""ChatGPT data export (`conversations.json`) to neutral conversations.

Each conversation is a tree (`mapping`) of nodes linked by `parent`/`children`; edits and
regenerations make sibling branches. By default the branch ending at `current_node` is read
(walking parent links up to the root); without a `current_node` the branch that follows the
newest (last) child at every fork is read. The other branches are counted in one
`branch_not_migrated` note. With `chatgpt_branches="all"` every root-to-leaf branch becomes its
own conversation with the id `<id>#branch-N` (N from 1, depth-first in child order).

Nodes become entries (position `node <id>`): text and multimodal messages become Messages
(image pointers as ImagePart references, audio as AudioPart transcripts); context nodes become
hidden developer Messages; an assistant message addressed to a tool (`recipient`) and the
tool's answer become one HostedToolStep (`python`, `browsing`, `dalle.text2im`, ...);
`thoughts` and `reasoning_recap` become Reasoning. Nodes without a message, and hidden nodes
with no content at all, are skipped. Citations (`metadata.citations`) and web
`content_references` become `url_citation` annotations on the message's first text part; the
others are `unmapped_field` notes with their values (both also stay in entry metadata).

It is one module over 500 lines because it is one thing: the reading of one export format, whose
branch walk, node kinds, citations and content parts all read the same node and content shapes.
"""

from __future__ import annotations

from typing import Any

from adapters.base import DecodeError
from adapters.chat_messages import describe_type, parse_timestamp
from adapters.json.common import RecordContext, pick_id
from adapters.model import (
    Annotation,
    AudioPart,
    Entry,
    HostedToolStep,
    ImagePart,
    Message,
    Part,
    Reasoning,
    SourceConversation,
    SourceNote,
    TextPart,
    note_value,
)

_BROWSING_TOOLS = frozenset({"browser", "browsing", "web", "web.run", "web.search", "search"})
_BROWSING_CONTENT = frozenset(
    {"tether_quote", "tether_browsing_display", "browsing", "sonic_webpage"}
)
_CONVERSATION_KEYS = frozenset(
    {"mapping", "current_node", "title", "create_time", "id", "conversation_id"}
)
_ENTRY_METADATA_KEYS = ("citations", "content_references", "attachments", "model_slug")
_TEXT_KEYS = ("text", "result", "summary", "content")


def read_chatgpt(value: Any, ctx: RecordContext) -> list[SourceConversation]:
    """Turn one exported conversation into one conversation (or one per branch)."""
    if not isinstance(value, dict):
        raise DecodeError(
            "not_an_object",
            f"{ctx.location}: the record is {describe_type(value)}, expected a conversation "
            "object with a mapping",
        )
    conversation_id, id_field = pick_id(value, ctx.config.id_field, ctx.derived_id)
    try:
        return _read(value, ctx, conversation_id, id_field)
    except DecodeError as exc:
        exc.message = f"{ctx.location}: conversation {conversation_id!r}: {exc.message}"
        exc.conversation_id = conversation_id
        raise


def _read(
    value: dict[str, Any], ctx: RecordContext, conversation_id: str, id_field: str | None
) -> list[SourceConversation]:
    mapping = value.get("mapping")
    if not isinstance(mapping, dict):
        raise DecodeError(
            "invalid_mapping", f"mapping is {describe_type(mapping)}, expected an object"
        )
    title = value.get("title")
    metadata = {
        k: v
        for k, v in value.items()
        if k not in _CONVERSATION_KEYS and k != id_field and isinstance(v, str | int | float | bool)
    }
    common: dict[str, Any] = {
        "source_kind": "chatgpt",
        "location": ctx.location,
        "title": title if isinstance(title, str) else None,
        "created_at": parse_timestamp(value.get("create_time")),
        "entry_time_field": "create_time",
    }
    if ctx.config.chatgpt_branches == "all":
        branches = _all_branches(mapping)
        conversations = []
        current = value.get("current_node")
        for number, branch in enumerate(branches, 1):
            notes: list[SourceNote] = []
            conversations.append(
                SourceConversation(
                    id=f"{conversation_id}#branch-{number}",
                    entries=_entries(branch, mapping, notes),
                    metadata={
                        **metadata,
                        "source_conversation_id": conversation_id,
                        "branch": number,
                        "branches": len(branches),
                        "current_branch": branch[-1] == current,
                    },
                    notes=notes,
                    **common,
                )
            )
        return conversations

    current = value.get("current_node")
    if isinstance(current, str) and current:
        path = _path_to(current, mapping)
    else:
        path = _newest_branch(mapping)
    notes = []
    dropped = sum(1 for leaf in _leaves(mapping) if leaf != path[-1]) if path else 0
    if dropped:
        notes.append(
            SourceNote(
                code="branch_not_migrated",
                message=f"{dropped} other branch(es) of this conversation (edits or "
                "regenerations) were not migrated; set chatgpt_branches = 'all' to migrate "
                "every branch",
                count=dropped,
            )
        )
    return [
        SourceConversation(
            id=conversation_id,
            entries=_entries(path, mapping, notes),
            metadata=metadata,
            notes=notes,
            **common,
        )
    ]


def _node(mapping: dict[str, Any], node_id: str, referrer: str) -> dict[str, Any]:
    node = mapping.get(node_id)
    if not isinstance(node, dict):
        raise DecodeError(
            "mapping_missing_node", f"node {node_id!r} ({referrer}) is not in the mapping"
        )
    return node


def _path_to(current: str, mapping: dict[str, Any]) -> list[str]:
    """Node ids from the root down to `current`, following parent links."""
    path: list[str] = []
    seen: set[str] = set()
    node_id: str | None = current
    referrer = "current_node"
    while node_id is not None:
        if node_id in seen:
            raise DecodeError("mapping_cycle", f"the parent links loop back to node {node_id!r}")
        seen.add(node_id)
        node = _node(mapping, node_id, referrer)
        path.append(node_id)
        parent = node.get("parent")
        referrer = f"parent of {node_id!r}"
        node_id = parent if isinstance(parent, str) and parent else None
    path.reverse()
    return path


def _roots(mapping: dict[str, Any]) -> list[str]:
    roots = []
    for node_id, node in mapping.items():
        parent = node.get("parent") if isinstance(node, dict) else None
        if not parent:
            roots.append(node_id)
        elif isinstance(parent, str):
            _node(mapping, parent, f"parent of {node_id!r}")
    if not roots and mapping:
        raise DecodeError("mapping_cycle", "no root node: every node has a parent")
    return roots


def _children(mapping: dict[str, Any], node_id: str) -> list[str]:
    children = mapping[node_id].get("children")
    if not isinstance(children, list):
        return []
    live = [c for c in children if isinstance(c, str)]
    for child in live:
        _node(mapping, child, f"child of {node_id!r}")
    return live


def _newest_branch(mapping: dict[str, Any]) -> list[str]:
    roots = _roots(mapping)
    if not roots:
        return []
    path = [roots[-1]]
    seen = {roots[-1]}
    while children := _children(mapping, path[-1]):
        child = children[-1]
        if child in seen:
            raise DecodeError("mapping_cycle", f"the children links loop back to node {child!r}")
        seen.add(child)
        path.append(child)
    return path


def _all_branches(mapping: dict[str, Any]) -> list[list[str]]:
    """Every root-to-leaf path, depth-first in child order; raises on a cycle."""
    branches: list[list[str]] = []
    stack: list[list[str]] = [[root] for root in reversed(_roots(mapping))]
    while stack:
        path = stack.pop()
        children = _children(mapping, path[-1])
        if not children:
            branches.append(path)
            continue
        for child in reversed(children):
            if child in path:
                raise DecodeError(
                    "mapping_cycle", f"the children links loop back to node {child!r}"
                )
            stack.append([*path, child])
    return branches


def _leaves(mapping: dict[str, Any]) -> list[str]:
    leaves: list[str] = []
    seen: set[str] = set()
    stack = list(_roots(mapping))
    while stack:
        node_id = stack.pop()
        if node_id in seen or not isinstance(mapping.get(node_id), dict):
            continue
        seen.add(node_id)
        children = mapping[node_id].get("children")
        live = [c for c in children if isinstance(c, str)] if isinstance(children, list) else []
        if live:
            stack.extend(live)
        else:
            leaves.append(node_id)
    return leaves


def _entries(path: list[str], mapping: dict[str, Any], notes: list[SourceNote]) -> list[Entry]:
    entries: list[Entry] = []
    for node_id in path:
        message = mapping[node_id].get("message")
        if message is None:
            continue
        if not isinstance(message, dict):
            raise DecodeError(
                "invalid_message",
                f"node {node_id!r}: message is {describe_type(message)}, expected an object",
            )
        for entry in _node_entries(message, node_id, notes):
            previous = entries[-1] if entries else None
            if (
                isinstance(entry, HostedToolStep)
                and entry.input is None
                and isinstance(previous, HostedToolStep)
                and previous.tool == entry.tool
                and previous.input is not None
                and not previous.outputs
            ):
                # The tool's answer completes the step the assistant's call opened.
                previous.outputs.extend(entry.outputs)
                for key, value in entry.metadata.items():
                    previous.metadata.setdefault(key, value)
                previous.metadata["output_source_id"] = entry.source_id
                continue
            entries.append(entry)
    return entries


def _tool_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        return "tool"
    return "browsing" if name in _BROWSING_TOOLS else name


def _node_entries(message: dict[str, Any], node_id: str, notes: list[SourceNote]) -> list[Entry]:
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    if not isinstance(role, str) or not role:
        raise DecodeError("missing_role", f"node {node_id!r} has no author role")
    author_name = author.get("name") if isinstance(author, dict) else None
    content = message.get("content")
    content = content if isinstance(content, dict) else {}
    content_type = content.get("content_type") or ("text" if "parts" in content else None)
    meta = message.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    raw_id = message.get("id")
    source_id = raw_id if isinstance(raw_id, str) and raw_id else node_id
    recipient = message.get("recipient")
    common: dict[str, Any] = {
        "source_id": source_id,
        "position": f"node {node_id}",
        "created_at": parse_timestamp(message.get("create_time")),
        "metadata": {k: meta[k] for k in _ENTRY_METADATA_KEYS if meta.get(k)},
    }
    hidden = bool(meta.get("is_visually_hidden_from_conversation"))

    match content_type:
        case "thoughts":
            thoughts = content.get("thoughts")
            texts = [
                "\n".join(
                    t for t in (item.get("summary"), item.get("content")) if isinstance(t, str)
                )
                for item in (thoughts if isinstance(thoughts, list) else [])
                if isinstance(item, dict)
            ]
            return [Reasoning(text="\n\n".join(t for t in texts if t) or None, **common)]
        case "reasoning_recap":
            recap = content.get("content")
            return [Reasoning(text=recap if isinstance(recap, str) else None, **common)]
        case "user_editable_context" | "model_editable_context":
            keys = (
                ("user_profile", "user_instructions")
                if content_type == "user_editable_context"
                else ("model_set_context",)
            )
            text = "\n\n".join(
                v for k in keys if isinstance(v := content.get(k), str) and v.strip()
            )
            if not text:
                return []
            return [Message(role="developer", parts=[TextPart(text=text)], hidden=True, **common)]

    if role == "tool":
        outputs, pointers = _tool_outputs(content, content_type, node_id, notes, source_id)
        if pointers:
            common["metadata"]["asset_pointers"] = pointers
        return [HostedToolStep(tool=_tool_name(author_name), outputs=outputs, **common)]
    if role == "assistant" and isinstance(recipient, str) and recipient not in ("all", ""):
        call = content.get("text") if content_type == "code" else None
        if not isinstance(call, str):
            call = "\n".join(_strings(content))
        return [HostedToolStep(tool=_tool_name(recipient), input=call, **common)]
    if content_type == "execution_output":
        return [HostedToolStep(tool="python", outputs=_strings(content), **common)]
    if content_type in _BROWSING_CONTENT:
        outputs, _ = _tool_outputs(content, content_type, node_id, notes, source_id)
        return [HostedToolStep(tool="browsing", outputs=outputs, **common)]

    parts: list[Part]
    match content_type:
        case "text":
            parts = [TextPart(text=p) for p in _string_parts(content) if p]
        case "multimodal_text":
            parts = _multimodal_parts(content, node_id, notes, source_id, common["metadata"])
        case "code":
            code = content.get("text")
            language = content.get("language")
            fence = language if isinstance(language, str) and language != "unknown" else ""
            parts = [TextPart(text=f"```{fence}\n{code}\n```")] if isinstance(code, str) else []
        case _:
            parts = [TextPart(text=t) for t in _strings(content)]
            notes.append(
                SourceNote(
                    code="unknown_content_type",
                    message=f"node {node_id!r}: content type {content_type!r} is not "
                    + ("understood; its text was kept" if parts else "understood; it was skipped"),
                    source_id=source_id,
                )
            )
    if hidden and not parts:
        return []
    _attach_citations(meta, parts, node_id, notes, source_id)
    return [Message(role=role, parts=parts, name=_str(author_name), hidden=hidden, **common)]


_WEB_REFERENCE_TYPES = frozenset({"webpage", "grouped_webpages", "webpage_extended"})


def _attach_citations(
    meta: dict[str, Any],
    parts: list[Part],
    node_id: str,
    notes: list[SourceNote],
    source_id: str,
) -> None:
    """`metadata.citations` and web `content_references` as `url_citation` annotations."""
    annotations: list[Annotation] = []
    left: list[Any] = []
    for citation in meta.get("citations") or []:
        body = citation.get("metadata") if isinstance(citation, dict) else None
        if isinstance(body, dict) and isinstance(body.get("url"), str):
            annotations.append(
                Annotation(
                    kind="url_citation",
                    url=body["url"],
                    title=_str(body.get("title")) or body["url"],
                    start_index=_index(citation.get("start_ix")),
                    end_index=_index(citation.get("end_ix")),
                )
            )
        else:
            left.append(citation)
    for reference in meta.get("content_references") or []:
        kind = reference.get("type") if isinstance(reference, dict) else None
        items = reference.get("items") if isinstance(reference, dict) else None
        listed = items if isinstance(items, list) else [reference]
        urls = [
            item for item in listed if isinstance(item, dict) and isinstance(item.get("url"), str)
        ]
        if kind not in _WEB_REFERENCE_TYPES or not urls:
            left.append(reference)
            continue
        assert isinstance(reference, dict)
        for item in urls:
            annotations.append(
                Annotation(
                    kind="url_citation",
                    url=item["url"],
                    title=_str(item.get("title")) or item["url"],
                    marker=_str(reference.get("matched_text")),
                    start_index=_index(reference.get("start_idx")),
                    end_index=_index(reference.get("end_idx")),
                )
            )
    # `citations` and `content_references` often name the same source for the same span.
    unique: dict[tuple[str | None, int | None, int | None], Annotation] = {}
    for annotation in annotations:
        key = (annotation.url, annotation.start_index, annotation.end_index)
        known = unique.get(key)
        unique[key] = (
            annotation if known is None or (annotation.marker and not known.marker) else known
        )
    annotations = list(unique.values())
    target = next((i for i, part in enumerate(parts) if isinstance(part, TextPart)), None)
    if annotations and target is None:
        left.extend(a.model_dump(exclude_none=True) for a in annotations)
    elif annotations and target is not None:
        part = parts[target]
        assert isinstance(part, TextPart)
        annotations = [_locate(annotation, part.text) for annotation in annotations]
        parts[target] = part.model_copy(update={"annotations": [*part.annotations, *annotations]})
    if left:
        notes.append(
            SourceNote(
                code="unmapped_field",
                message=f"node {node_id!r}: {len(left)} citation(s) or content reference(s) "
                "with no web address (or no text to attach to) kept in the report only",
                source_id=source_id,
                count=len(left),
                value=note_value(left),
            )
        )


def _locate(annotation: Annotation, text: str) -> Annotation:
    """The annotation with its span moved onto its marker when the export's indices miss it
    (they count characters of an internal text that differs from the exported one)."""
    marker, start, end = annotation.marker, annotation.start_index, annotation.end_index
    if not marker or (start is not None and end is not None and text[start:end] == marker):
        return annotation
    found = text.find(marker)
    if found < 0:
        return annotation
    return annotation.model_copy(update={"start_index": found, "end_index": found + len(marker)})


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tool_outputs(
    content: dict[str, Any],
    content_type: Any,
    node_id: str,
    notes: list[SourceNote],
    source_id: str,
) -> tuple[list[str], list[str]]:
    pointers: list[str] = []
    match content_type:
        case "tether_quote":
            fields = (content.get(k) for k in ("title", "url", "text"))
            outputs = ["\n".join(f for f in fields if isinstance(f, str) and f)]
        case "tether_browsing_display":
            fields = (content.get(k) for k in ("summary", "result"))
            outputs = ["\n".join(f for f in fields if isinstance(f, str) and f)]
        case "system_error":
            fields = (content.get(k) for k in ("name", "text"))
            outputs = [": ".join(f for f in fields if isinstance(f, str) and f)]
        case "multimodal_text":
            outputs = []
            for part in _raw_parts(content):
                if isinstance(part, str):
                    outputs.append(part)
                elif isinstance(part, dict) and isinstance(part.get("asset_pointer"), str):
                    pointers.append(part["asset_pointer"])
                    outputs.append(f"[image {part['asset_pointer']}]")
        case "text" | "code" | "execution_output" | "browsing" | "sonic_webpage":
            outputs = _strings(content)
        case _:
            outputs = _strings(content)
            notes.append(
                SourceNote(
                    code="unknown_content_type",
                    message=f"node {node_id!r}: tool content type {content_type!r} is not "
                    "understood; any text in it was kept",
                    source_id=source_id,
                )
            )
    return [o for o in outputs if o], pointers


def _multimodal_parts(
    content: dict[str, Any],
    node_id: str,
    notes: list[SourceNote],
    source_id: str,
    entry_metadata: dict[str, Any],
) -> list[Part]:
    parts: list[Part] = []
    for raw in _raw_parts(content):
        if isinstance(raw, str):
            if raw:
                parts.append(TextPart(text=raw))
            continue
        if not isinstance(raw, dict):
            continue
        kind = raw.get("content_type")
        pointer = raw.get("asset_pointer")
        if kind == "image_asset_pointer" and isinstance(pointer, str):
            parts.append(ImagePart(reference=pointer))
        elif kind == "audio_transcription":
            parts.append(AudioPart(transcript=_str(raw.get("text"))))
        elif isinstance(pointer, str):
            # Audio and video recordings live in the export zip; the transcript carries the words.
            entry_metadata.setdefault("asset_pointers", []).append(pointer)
            notes.append(
                SourceNote(
                    code="media_not_migrated",
                    message=f"node {node_id!r}: {kind or 'media'} {pointer} lives in the "
                    "export zip and cannot be sent; any transcript is kept as text",
                    source_id=source_id,
                )
            )
        elif isinstance(raw.get("text"), str):
            parts.append(TextPart(text=raw["text"]))
            notes.append(
                SourceNote(
                    code="unknown_content_type",
                    message=f"node {node_id!r}: part type {kind!r} is not understood; "
                    "its text was kept",
                    source_id=source_id,
                )
            )
        else:
            notes.append(
                SourceNote(
                    code="unknown_content_type",
                    message=f"node {node_id!r}: part type {kind!r} is not understood; "
                    "it was skipped",
                    source_id=source_id,
                )
            )
    return parts


def _raw_parts(content: dict[str, Any]) -> list[Any]:
    parts = content.get("parts")
    return parts if isinstance(parts, list) else []


def _string_parts(content: dict[str, Any]) -> list[str]:
    return [p for p in _raw_parts(content) if isinstance(p, str)]


def _strings(content: dict[str, Any]) -> list[str]:
    """Every piece of text a content object of any type holds."""
    texts = [p for p in _string_parts(content) if p]
    texts.extend(v for k in _TEXT_KEYS if isinstance(v := content.get(k), str) and v)
    return texts


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
