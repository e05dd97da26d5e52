"""Assistants API threads from exported JSON (the Assistants API shut down on 2026-08-26).

The canonical layout, written by `export_threads` and read back unchanged, is one JSON file per
thread, named `<thread_id>.json`::

    {"thread": {...},        # the thread object, as `GET /threads/{id}` returned it
     "messages": [...],      # message objects, oldest first (`order=asc`)
     "runs": [...],          # run objects, oldest first ([] when tool history was not asked for)
     "run_steps": [...],     # the steps of those runs, oldest first within each run
     "files": [...]}         # optional: file objects from `GET /files/{id}`, for file names

Every object is the API's own JSON, unchanged. Messages may be in either order: the reader
puts them oldest first by `created_at`. Where timestamps cannot tell (ties), plain lists in the
canonical layout are taken as oldest first and lists saved from the API (envelopes, bare
arrays) as newest first, the API's default; `thread_order` (`--thread-order`) overrides.

The reader also takes the shapes people saved by hand, per file:

- the canonical layout, where any list may instead be the API's list envelope
  (`{"object": "list", "data": [...], "has_more": ...}`) and `run_steps` may be a mapping
  from run id to a list of steps;
- a list envelope or a bare array of message objects (and, mixed in, runs and run steps);
- a thread object alone (a thread with no messages);
- a JSON array of canonical documents (several threads in one file);
- JSON Lines, one thread document (any shape above) per line;
- Assistants v1 shapes (`file_ids` on messages, the `retrieval` tool).

Files and directories are read by `adapters.json.threads`, framed as every JSON source is;
this module turns each parsed document into its conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from adapters.assistants.entries import AssistantsFormatError
from adapters.assistants.timeline import SOURCE_KIND, build_conversation
from adapters.base import SurrogatePolicy, lone_surrogate_paths, replace_lone_surrogates
from adapters.model import SourceConversation, SourceFailure, SourceNote, SourceRecord

logger = logging.getLogger(__name__)

ThreadOrder = Literal["auto", "asc", "desc"]

CANONICAL_KEYS = ("thread", "messages", "runs", "run_steps", "files")
_OBJECT_KINDS = {"thread", "thread.message", "thread.run", "thread.run.step"}


def looks_like_assistants(obj: dict[str, Any]) -> bool:
    """Whether a JSON object (a document, or an array's first element) is Assistants data."""
    kind = obj.get("object")
    if kind in _OBJECT_KINDS:
        return True
    if kind == "list":
        data = obj.get("data")
        return (
            isinstance(data, list)
            and bool(data)
            and isinstance(data[0], dict)
            and data[0].get("object") in _OBJECT_KINDS
        )
    thread = obj.get("thread")
    if isinstance(thread, dict):
        return thread.get("object") == "thread" or str(thread.get("id", "")).startswith("thread_")
    messages = obj.get("messages")
    if isinstance(messages, dict):
        return looks_like_assistants(messages)
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return messages[0].get("object") == "thread.message"
    return False


def canonical_document(
    *,
    thread: Mapping[str, Any],
    messages: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    run_steps: list[dict[str, Any]],
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The canonical layout for one thread (`files` only when file names were looked up)."""
    document: dict[str, Any] = {
        "thread": dict(thread),
        "messages": messages,
        "runs": runs,
        "run_steps": run_steps,
    }
    if files is not None:
        document["files"] = files
    return document


def conversation_from_document(
    document: Any, *, location: str, thread_order: ThreadOrder = "auto"
) -> SourceConversation:
    """Build the conversation for one thread document of any accepted shape.

    Raises:
        AssistantsFormatError: The document holds no thread, or several.
    """
    conversations = _conversations(document, location, thread_order)
    if len(conversations) != 1:
        raise AssistantsFormatError(f"expected one thread, found {len(conversations)}")
    return conversations[0]


# --- documents ------------------------------------------------------------------------------


def document_records(
    document: Any, location: str, order: ThreadOrder, policy: SurrogatePolicy = "fail"
) -> Iterator[SourceRecord]:
    """The conversations of one parsed document (a file's, a line's or an array item's), or
    the failure to read it: a lone surrogate (by `policy`) or a shape that holds no thread."""
    surrogates = lone_surrogate_paths(document)
    replaced: SourceNote | None = None
    if surrogates and policy == "fail":
        yield failure(
            location,
            "lone_surrogate",
            f"{location}: a lone UTF-16 surrogate escape in {', '.join(surrogates)}; it is not "
            "text and cannot be sent (lone_surrogates = 'replace' migrates it with U+FFFD)",
            _guess_id(document),
        )
        return
    if surrogates:
        document = replace_lone_surrogates(document)
        replaced = SourceNote(
            code="lone_surrogate_replaced",
            message=f"{location}: a lone UTF-16 surrogate in {', '.join(surrogates)} was "
            "replaced by U+FFFD",
            count=len(surrogates),
        )
    try:
        conversations = _conversations(document, location, order)
    except AssistantsFormatError as exc:
        yield failure(location, "invalid_thread", f"{location}: {exc}", _guess_id(document))
        return
    for conversation in conversations:
        if replaced is not None:
            conversation.notes.append(replaced)
        yield conversation


def failure(
    location: str, code: str, message: str, conversation_id: str | None = None
) -> SourceFailure:
    """An Assistants record that cannot be read, logged as a warning."""
    logger.warning("%s", message)
    return SourceFailure(
        source_kind=SOURCE_KIND,
        location=location,
        code=code,
        message=message,
        conversation_id=conversation_id,
    )


# --- shapes --------------------------------------------------------------------------------


def _conversations(document: Any, location: str, order: ThreadOrder) -> list[SourceConversation]:
    if isinstance(document, list) and document and all(is_thread_document(d) for d in document):
        return [
            _from_parts(_canonical_parts(d), location=f"{location} [{i}]", order=order)
            for i, d in enumerate(document)
        ]
    if isinstance(document, list):
        return [_from_parts(_classify(document), location=location, order=order)]
    if not isinstance(document, dict):
        raise AssistantsFormatError("not a JSON object or array")
    if document.get("object") == "list":
        truncated: list[str] = []
        parts = _classify(_data(document, "list", truncated))
        parts["truncated"] = truncated
        return [_from_parts(parts, location=location, order=order)]
    if document.get("object") in _OBJECT_KINDS:
        return [_from_parts(_classify([document]), location=location, order=order)]
    if is_thread_document(document):
        return [_from_parts(_canonical_parts(document), location=location, order=order)]
    raise AssistantsFormatError(
        "no Assistants thread here: expected a thread document "
        '({"thread", "messages", "runs", "run_steps"}), a list of messages or a thread object'
    )


def is_thread_document(document: Any) -> bool:
    """Whether a parsed value is one thread document in the canonical layout."""
    return (
        isinstance(document, dict)
        and "object" not in document
        and any(key in document for key in CANONICAL_KEYS)
    )


_Parts = dict[str, Any]


def _canonical_parts(document: dict[str, Any]) -> _Parts:
    unknown = set(document) - set(CANONICAL_KEYS)
    if unknown:
        raise AssistantsFormatError(f"unknown keys in thread document: {sorted(unknown)}")
    thread = document.get("thread")
    if thread is not None and not isinstance(thread, dict):
        raise AssistantsFormatError("`thread` is not an object")
    truncated: list[str] = []
    steps = document.get("run_steps")
    if isinstance(steps, dict) and steps.get("object") != "list":
        # A mapping from run id to that run's steps.
        steps = [step for value in steps.values() for step in _data(value, "run_steps", truncated)]
    return {
        "thread": thread,
        "messages": _data(document.get("messages"), "messages", truncated),
        "runs": _data(document.get("runs"), "runs", truncated),
        "run_steps": _data(steps, "run_steps", truncated),
        "files": _data(document.get("files"), "files"),
        "truncated": truncated,
        # `export_threads` writes plain lists oldest first; an envelope was saved from the API.
        "listed": "desc" if isinstance(document.get("messages"), dict) else "asc",
    }


def _classify(objects: list[Any]) -> _Parts:
    parts: _Parts = {
        "thread": None,
        "messages": [],
        "runs": [],
        "run_steps": [],
        "files": [],
        "truncated": [],
        "listed": "desc",  # a list saved from the API, which lists newest first by default
    }
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise AssistantsFormatError(f"element {index} is not a JSON object")
        kind = obj.get("object")
        if kind == "thread":
            if parts["thread"] is not None:
                raise AssistantsFormatError("more than one thread object")
            parts["thread"] = obj
        elif kind == "thread.run":
            parts["runs"].append(obj)
        elif kind == "thread.run.step":
            parts["run_steps"].append(obj)
        elif kind == "thread.message" or (kind is None and "role" in obj and "content" in obj):
            parts["messages"].append(obj)
        else:
            raise AssistantsFormatError(f"element {index} is not an Assistants object ({kind!r})")
    return parts


def _data(value: Any, what: str, truncated: list[str] | None = None) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        if value.get("has_more") and truncated is not None:
            truncated.append(what)
        return list(value["data"])
    raise AssistantsFormatError(f"`{what}` is neither a list nor a list envelope")


def _from_parts(parts: _Parts, *, location: str, order: ThreadOrder) -> SourceConversation:
    filenames = {
        str(f["id"]): str(f["filename"])
        for f in parts["files"]
        if isinstance(f, dict) and f.get("id") and f.get("filename")
    }
    conversation = build_conversation(
        thread=parts["thread"],
        messages=parts["messages"],
        runs=parts["runs"],
        run_steps=parts["run_steps"],
        location=location,
        filenames=filenames,
        listed=parts["listed"] if order == "auto" else order,
        order_given=order != "auto",
    )
    for what in parts["truncated"]:
        conversation.notes.append(
            SourceNote(
                code="export_page_incomplete",
                message=f"{location}: the saved `{what}` page says has_more=true; "
                "what the later pages held is not in the export",
            )
        )
    return conversation


def _guess_id(document: Any) -> str | None:
    if isinstance(document, dict):
        thread = document.get("thread")
        if isinstance(thread, dict) and isinstance(thread.get("id"), str):
            return str(thread["id"])
        if document.get("object") == "thread" and isinstance(document.get("id"), str):
            return str(document["id"])
    return None
