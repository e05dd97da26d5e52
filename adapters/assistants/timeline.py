"""Assistants threads as one timeline: thread + messages + runs + run steps -> SourceConversation.

Pure: no I/O. Both the export reader and the live reader hand the API's own objects (plain
JSON dicts) to `build_conversation`. How each message and run step becomes entries is
`adapters.assistants.entries`; this module orders them and builds the conversation.

Order. Messages are put in ascending order by `created_at`. Ids do not order messages: they
are random, and several messages often share one `created_at` second (the real recording
`MessagesWithRoles` has three). Timestamps that only fall (or only rise) through the list prove
its direction; otherwise the list is taken as `listed` says: oldest first for the canonical
layout `export_threads` writes, newest first (the API's default `order=desc`) for list
envelopes and bare message arrays saved by hand, or as the user states (`--thread-order`).
Messages whose order rests on that assumption are counted in one `thread_order_assumed` note.
Run steps are ordered the same way within their run.

Content. A content part or annotation type this reader does not know is a note
(`unknown_part_type`, `unknown_annotation`) carrying its value, and the rest of the message is
read; `url_citation` annotations are kept. A message's own `metadata` and keys the reader does
not know are an `unmapped_field` note with their values.

Run steps. Within a run, the tool steps that precede a `message_creation` step go right before
the message that step names: function calls become `ToolCall` + `ToolResult` pairs (calls
first, then outputs, for parallel calls), code interpreter, file search and v1 retrieval steps
become `HostedToolStep`s. Tool steps after a run's last message (a run that failed, expired or
was cancelled) go after that message, or by time when the run produced none. A function call
whose output is null (the run stopped waiting for it) stays a `ToolCall` without a result; the
transform decides what to do with it.

Metadata. The thread's own metadata becomes the conversation's (it carries over to the new
conversation within the API's limits), followed by `assistant_id`, a summary of each run
(`runs`) and the thread's `tool_resources`. Each entry keeps its message's `assistant_id`,
`run_id`, `status`, `incomplete_details`, own `metadata` and attachment tools, or its step's
`run_id`, `step_id` and `status`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from adapters.assistants.entries import (
    AssistantsFormatError,
    JsonObject,
    _message,
    _time,
    _tool_entries,
)
from adapters.model import (
    Entry,
    SourceConversation,
    SourceNote,
)

SOURCE_KIND = "assistants"


ListOrder = Literal["asc", "desc"]
_ORDER_WORDS = {"asc": "oldest first", "desc": "newest first (the API's default)"}


def build_conversation(
    *,
    thread: JsonObject | None,
    messages: Sequence[JsonObject],
    runs: Sequence[JsonObject] = (),
    run_steps: Sequence[JsonObject] = (),
    location: str,
    thread_id: str | None = None,
    filenames: Mapping[str, str] | None = None,
    listed: ListOrder = "asc",
    order_given: bool = False,
) -> SourceConversation:
    """Merge one thread's objects into a neutral conversation.

    Args:
        thread: The thread object, if known (exports of bare message lists lack it).
        messages: The thread's messages, in the order the API listed them (either order).
        runs: The thread's runs, if exported.
        run_steps: The steps of those runs, in any grouping.
        location: Where the thread came from, for errors and reports.
        thread_id: The thread id when neither `thread` nor the messages carry one.
        filenames: File names by file id, when they were looked up through the Files API.
        listed: The order the lists are believed to be in where timestamps cannot tell.
        order_given: `listed` was stated by the user (`--thread-order`), not assumed.

    Raises:
        AssistantsFormatError: The data is not an Assistants thread; the message names the
            offending object.
    """
    names = dict(filenames or {})
    for what, objects in (("message", messages), ("run", runs), ("run step", run_steps)):
        for index, obj in enumerate(objects):
            if not isinstance(obj, Mapping):
                raise AssistantsFormatError(f"{what} {index} is not a JSON object")
    conversation_id = _thread_id(thread, messages, thread_id)
    notes: list[SourceNote] = []

    order, tied = _ascending(messages, listed, order_given)
    ordered = [messages[i] for i in order]
    if tied:
        notes.append(
            SourceNote(
                code="thread_order_assumed",
                message=f"{tied} messages share a created_at second with another, so their "
                f"order comes from the list, taken as {_ORDER_WORDS[listed]}; if the list was "
                f"saved the other way, pass --thread-order "
                f"{'asc' if listed == 'desc' else 'desc'}",
                count=tied,
            )
        )
    positions = {id(m): i for i, m in enumerate(messages)}
    entries_before: dict[str, list[Entry]] = {}
    floating: list[tuple[float, int, int, list[Entry]]] = []
    message_index = {str(m.get("id")): n for n, m in enumerate(ordered)}
    last_message_of_run: dict[str, int] = {}
    for n, message in enumerate(ordered):
        if message.get("run_id"):
            last_message_of_run[str(message["run_id"])] = n

    for run_id, steps in _steps_by_run(run_steps, listed):
        pending: list[Entry] = []
        pending_time: float | None = None
        for index, step in steps:
            details = step.get("step_details")
            if not isinstance(details, Mapping):
                raise AssistantsFormatError(f"run step {step.get('id')} has no step_details")
            if details.get("type") == "message_creation":
                target = str((details.get("message_creation") or {}).get("message_id"))
                if target in message_index:
                    entries_before.setdefault(target, []).extend(pending)
                else:
                    notes.append(
                        SourceNote(
                            code="run_step_message_missing",
                            message=f"run step {step.get('id')} created message {target}, "
                            "which is not in the thread; its tool steps are placed by time",
                            source_id=str(step.get("id")),
                        )
                    )
                    if pending:
                        floating.append((pending_time or 0.0, len(floating), -1, pending))
                pending, pending_time = [], None
            elif details.get("type") == "tool_calls":
                if pending_time is None:
                    pending_time = _time(step.get("created_at"))
                pending.extend(_tool_entries(step, index, names))
            else:
                raise AssistantsFormatError(
                    f"run step {step.get('id')} has unknown type {details.get('type')!r}"
                )
        if pending:
            # Steps after the run's last message happened after it, whatever the clock says.
            floating.append(
                (pending_time or 0.0, len(floating), last_message_of_run.get(run_id, -1), pending)
            )

    after: dict[int, list[Entry]] = {}
    for when, _, earliest, group in sorted(floating, key=lambda f: (f[0], f[1])):
        slot = earliest
        for n, message in enumerate(ordered):
            if (_time(message.get("created_at")) or 0.0) <= when:
                slot = max(slot, n)
        after.setdefault(slot, []).extend(group)

    entries: list[Entry] = list(after.get(-1, []))
    for n, message in enumerate(ordered):
        message_id = str(message.get("id"))
        entries.extend(entries_before.get(message_id, []))
        entries.append(_message(message, positions[id(message)], names, notes))
        entries.extend(after.get(n, []))

    return SourceConversation(
        source_kind=SOURCE_KIND,
        id=conversation_id,
        location=location,
        entries=entries,
        created_at=_time((thread or {}).get("created_at")),
        metadata=_conversation_metadata(thread, ordered, runs),
        notes=notes,
    )


# --- ordering ------------------------------------------------------------------------------


def _ascending(
    objects: Sequence[JsonObject], listed: ListOrder, order_given: bool = True
) -> tuple[list[int], int]:
    """Indexes of `objects` oldest first, and how many of them the timestamps left unordered.

    Timestamps that only ever fall (or only ever rise) through the list prove its direction;
    otherwise the list is taken in the `listed` direction. Ties keep that direction. The count
    is 0 when the direction was proven or given.
    """
    indexes = list(range(len(objects)))
    times = [_time(o.get("created_at")) or 0.0 for o in objects]
    distinct = len(set(times)) > 1
    falling = distinct and all(a >= b for a, b in itertools.pairwise(times))
    rising = distinct and all(a <= b for a, b in itertools.pairwise(times))
    if falling or (not rising and listed == "desc"):
        indexes.reverse()
    ordered = sorted(indexes, key=lambda i: times[i])
    if order_given or falling or rising:
        return ordered, 0
    counts = Counter(times)
    return ordered, sum(n for n in counts.values() if n > 1)


def _steps_by_run(
    run_steps: Sequence[JsonObject], listed: ListOrder
) -> list[tuple[str, list[tuple[int, JsonObject]]]]:
    """Steps grouped by run (runs in order of first step), each group oldest first."""
    groups: dict[str, list[tuple[int, JsonObject]]] = {}
    for index, step in enumerate(run_steps):
        groups.setdefault(str(step.get("run_id")), []).append((index, step))
    ordered: list[tuple[str, list[tuple[int, JsonObject]]]] = []
    for run_id, group in groups.items():
        order, _ = _ascending([step for _, step in group], listed)
        ordered.append((run_id, [group[i] for i in order]))
    ordered.sort(key=lambda g: _time(g[1][0][1].get("created_at")) or 0.0)
    return ordered


# --- conversation --------------------------------------------------------------------------


def _thread_id(thread: JsonObject | None, messages: Sequence[JsonObject], given: str | None) -> str:
    ids = {str(m["thread_id"]) for m in messages if m.get("thread_id")}
    if thread is not None and thread.get("id"):
        ids.add(str(thread["id"]))
    if given:
        ids.add(given)
    if len(ids) > 1:
        raise AssistantsFormatError(f"objects of several threads in one document: {sorted(ids)}")
    if not ids:
        raise AssistantsFormatError("no thread id: neither a thread object nor message thread_id")
    return ids.pop()


def _conversation_metadata(
    thread: JsonObject | None, messages: Iterable[JsonObject], runs: Sequence[JsonObject]
) -> dict[str, Any]:
    """The thread's own metadata first (it carries over to the conversation), then provenance."""
    metadata: dict[str, Any] = {}
    if thread is not None and isinstance(thread.get("metadata"), Mapping):
        metadata.update(thread["metadata"])
    assistant_ids: list[str] = []
    for obj in [*messages, *runs]:
        assistant_id = obj.get("assistant_id")
        if assistant_id and assistant_id not in assistant_ids:
            assistant_ids.append(str(assistant_id))
    if assistant_ids:
        metadata.setdefault("assistant_id", ",".join(assistant_ids))
    if runs:
        metadata.setdefault(
            "runs",
            [
                {key: run[key] for key in _RUN_KEYS if run.get(key)}
                for run in sorted(runs, key=lambda r: _time(r.get("created_at")) or 0.0)
            ],
        )
    if thread is not None and thread.get("tool_resources"):
        metadata.setdefault("tool_resources", thread["tool_resources"])
    return metadata


_RUN_KEYS = ("id", "assistant_id", "status", "model", "last_error", "incomplete_details")
