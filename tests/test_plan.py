"""The planner: metadata, batching, fingerprint, validation, and the empty plan."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

from adapters.model import Entry, Message, SourceConversation, TextPart, ToolCall, ToolResult
from migrate.errors import ConversationError
from migrate.limits import MAX_ITEMS_PER_CALL
from migrate.plan.model import CONVERSATIONS_PATH, ITEMS_PATH, ConversationPlan
from migrate.plan.pipeline import FirstCopies, is_skipped, iterate_plans, plan_or_error
from migrate.plan.planner import batch_sizes_for, fingerprint, plan_conversation
from migrate.transform.policy import Policy


def conversation(*entries: Entry, **fields: Any) -> SourceConversation:
    values: dict[str, Any] = {
        "source_kind": "chat_completions",
        "id": "conv-1",
        "location": "chats.jsonl:3",
    }
    values.update(fields)
    return SourceConversation(entries=list(entries), **values)


def texts(count: int, prefix: str = "m") -> list[Entry]:
    return [Message(role="user", parts=[TextPart(text=f"{prefix}{i}")]) for i in range(count)]


def call_pair(call_id: str) -> list[Entry]:
    return [
        ToolCall(call_id=call_id, name="f", arguments="{}"),
        ToolResult(call_id=call_id, output="ok"),
    ]


def plan(*entries: Entry, **fields: Any) -> ConversationPlan:
    return plan_conversation(conversation(*entries, **fields), Policy())


def assert_batches_well_formed(result: ConversationPlan) -> None:
    assert sum(result.batch_sizes) == len(result.items)
    assert all(1 <= size <= MAX_ITEMS_PER_CALL for size in result.batch_sizes)


# --- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (1, [1]),
        (19, [19]),
        (20, [20]),
        (21, [20, 1]),
        (40, [20, 20]),
        (41, [20, 20, 1]),
        (500, [20] * 25),
    ],
)
def test_plain_messages_fill_batches_of_twenty(count: int, sizes: list[int]) -> None:
    result = plan(*texts(count))
    assert result.batch_sizes == sizes
    assert [p.item["content"][0]["text"] for p in result.items] == [f"m{i}" for i in range(count)]


def parallel(*call_ids: str) -> list[Entry]:
    """Parallel calls: the calls, then their outputs in the same order."""
    calls: list[Entry] = [ToolCall(call_id=call_id, name="f") for call_id in call_ids]
    outputs: list[Entry] = [ToolResult(call_id=call_id, output="x") for call_id in call_ids]
    return [*calls, *outputs]


def custom_pair(call_id: str) -> list[Entry]:
    return [
        ToolCall(call_id=call_id, name="sql", arguments="SELECT 1", tool_type="custom"),
        ToolResult(call_id=call_id, output="1", tool_type="custom"),
    ]


def pairs_with_text(count: int) -> list[Entry]:
    entries: list[Entry] = []
    for i in range(count):
        entries += [*texts(2, f"t{i}-"), *call_pair(f"call_{i}")]
    return entries


# (entries, batch sizes, call ids whose call and output land in different calls)
TOOL_BOUNDARIES: dict[str, tuple[list[Entry], list[int], set[str]]] = {
    "pair at 19/20": ([*texts(19), *call_pair("a"), *texts(5)], [20, 6], {"a"}),
    "pair at 39/40": ([*texts(39), *call_pair("a")], [20, 20, 1], {"a"}),
    "pairs at 19/20 and 39/40": (
        [*texts(19), *call_pair("a"), *texts(18), *call_pair("b"), *texts(1)],
        [20, 20, 2],
        {"a", "b"},
    ),
    "pair at 18/19 ends a call": ([*texts(18), *call_pair("a"), *texts(3)], [20, 3], set()),
    "pair at 20/21 starts a call": ([*texts(20), *call_pair("a")], [20, 2], set()),
    "custom tool pair at 19/20": ([*texts(19), *custom_pair("a"), *texts(1)], [20, 2], {"a"}),
    "parallel calls across 20": (
        [*texts(17), *parallel("a", "b", "c"), *texts(3)],
        [20, 6],
        {"a", "b", "c"},
    ),
    "parallel group over 20 items": (
        parallel(*(f"c{i}" for i in range(12))),
        [20, 4],
        {"c8", "c9", "c10", "c11"},
    ),
    "parallel group at 39/40": (
        [*texts(38), *parallel("a", "b"), *texts(1)],
        [20, 20, 3],
        {"a", "b"},
    ),
    "output 31 items after its call": (
        [ToolCall(call_id="far", name="f"), *texts(30), ToolResult(call_id="far", output="x")],
        [20, 12],
        {"far"},
    ),
    "125 pairs in 500 items": (pairs_with_text(125), [20] * 25, set()),
    "130 pairs in 520 items": (pairs_with_text(130), [20] * 26, set()),
}


@pytest.mark.parametrize("case", list(TOOL_BOUNDARIES), ids=list(TOOL_BOUNDARIES))
def test_tool_history_is_cut_at_twenty_wherever_pairs_fall(case: str) -> None:
    entries, sizes, split = TOOL_BOUNDARIES[case]
    result = plan(*entries)
    assert result.batch_sizes == sizes
    assert len(sizes) == math.ceil(len(result.items) / MAX_ITEMS_PER_CALL)
    batch_of: dict[tuple[str, str], int] = {}
    for number, batch in enumerate(result.batches()):
        for planned in batch:
            if "call_id" in planned.item:
                is_output = planned.item["type"].endswith("_output")
                batch_of[(planned.item["call_id"], "output" if is_output else "call")] = number
    call_ids = {call_id for call_id, _ in batch_of}
    # every output still follows its call, and the cut splits exactly the expected pairs
    assert all(batch_of[(c, "call")] <= batch_of[(c, "output")] for c in call_ids)
    assert {c for c in call_ids if batch_of[(c, "call")] != batch_of[(c, "output")]} == split


def test_a_split_pair_keeps_its_order_across_the_cut() -> None:
    result = plan(*texts(19), *call_pair("call_1"), *texts(5, "after"))
    first, second = result.batches()
    assert first[-1].item["type"] == "function_call"
    assert second[0].item == {"type": "function_call_output", "call_id": "call_1", "output": "ok"}


@pytest.mark.parametrize("count", [0, 1, 19, 20, 21, 39, 40, 41, 500, 501])
def test_batch_sizes_for_is_the_minimum_whatever_the_items(count: int) -> None:
    # calls all through, each answered only past the end: no cut could keep a pair together
    items = [
        {"type": "function_call", "call_id": f"c{i}", "name": "f", "arguments": ""}
        for i in range(count)
    ]
    sizes = batch_sizes_for(items)
    assert len(sizes) == math.ceil(count / MAX_ITEMS_PER_CALL)
    assert sum(sizes) == count and all(size == MAX_ITEMS_PER_CALL for size in sizes[:-1])


def test_batch_sizes_for_empty_list() -> None:
    assert batch_sizes_for([]) == []


# --- zero items, requests ----------------------------------------------------------------------


def test_a_conversation_with_nothing_to_send_is_an_empty_plan() -> None:
    empty = conversation(Message(role="user", parts=[]))
    result = plan_conversation(empty, Policy())
    assert result.items == [] and result.batch_sizes == []
    assert [f.code for f in result.findings] == ["empty_message"]
    assert [r.path for r in result.requests()] == [CONVERSATIONS_PATH]
    assert is_skipped(plan_or_error(empty, Policy()))


def test_requests_create_empty_then_append_batches() -> None:
    result = plan(*texts(25))
    requests = result.requests()
    assert requests[0].path == CONVERSATIONS_PATH
    assert requests[0].body == {"metadata": result.metadata}
    assert [r.path for r in requests[1:]] == [ITEMS_PATH, ITEMS_PATH]
    assert [len(r.body["items"]) for r in requests[1:]] == [20, 5]


# --- metadata ----------------------------------------------------------------------------------


def test_metadata_carries_provenance_first() -> None:
    result = plan(
        *texts(1),
        title="Trip plans",
        created_at=1_700_000_000.5,
        metadata={"user": "u1", "tags": ["a", "b"], "n": 3, "flag": True, "nested": {"k": "v"}},
    )
    assert result.metadata == {
        "migrated_from": "chat_completions",
        "source_id": "conv-1",
        "title": "Trip plans",
        "created_at": "2023-11-14T22:13:20Z",
        "user": "u1",
        "tags": '["a","b"]',
        "n": "3",
        "flag": "true",
        "nested.k": "v",
    }
    assert result.findings == []


def test_metadata_that_does_not_fit_is_reported() -> None:
    source_metadata: dict[str, Any] = {f"key{i:02}": "v" for i in range(20)}
    source_metadata["k" * 65] = "long key"
    source_metadata["big"] = "v" * 513
    source_metadata["source_id"] = "collides"
    result = plan(*texts(1), title="t" * 600, metadata=source_metadata)
    assert len(result.metadata) == 16
    assert result.metadata["title"] == "t" * 512
    assert list(result.metadata)[:3] == ["migrated_from", "source_id", "title"]
    assert result.metadata["source_id"] == "conv-1"
    finding = next(f for f in result.findings if f.code == "metadata_truncated")
    for expected in ("title", "key13", "key19", "big", "source_id (name taken)", "kkkk"):
        assert expected in finding.message
    assert "key12" not in finding.message
    # title cut + 7 keys over 16 pairs + long key + long value + name taken
    assert finding.count == 11


def test_a_long_source_id_is_hashed() -> None:
    long_id = "x" * 600
    result = plan(*texts(1), id=long_id)
    assert result.metadata["source_id"] == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    assert result.source_id == long_id
    assert [f.code for f in result.findings] == ["source_id_hashed"]


def test_an_impossible_timestamp_is_reported_not_fatal() -> None:
    result = plan(*texts(1), created_at=1e20)
    assert "created_at" not in result.metadata
    assert [f.code for f in result.findings] == ["metadata_truncated"]


# --- fingerprint -------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_sensitive() -> None:
    base = plan(*texts(3), title="t")
    assert base.fingerprint == plan(*texts(3), title="t").fingerprint
    assert len(base.fingerprint) == 64
    assert base.fingerprint != plan(*texts(3), title="other").fingerprint
    assert base.fingerprint != plan(*texts(3, "n"), title="t").fingerprint
    assert base.fingerprint != plan(*texts(4), title="t").fingerprint


def test_fingerprint_depends_on_batching_not_key_order() -> None:
    items = [
        {"type": "message", "role": "user", "content": "a"},
        {"content": "b", "role": "user", "type": "message"},
    ]
    reordered = [
        {"role": "user", "content": "a", "type": "message"},
        {"type": "message", "role": "user", "content": "b"},
    ]
    assert fingerprint({"a": "1"}, [2], items) == fingerprint({"a": "1"}, [2], reordered)
    assert fingerprint({"a": "1"}, [2], items) != fingerprint({"a": "1"}, [1, 1], items)


# --- validation --------------------------------------------------------------------------------


def test_an_invalid_item_fails_the_conversation_naming_the_item() -> None:
    entries = [
        *texts(21),
        ToolCall(call_id="c", name="", source_id="src-bad"),
        ToolResult(call_id="c", output=""),
    ]
    with pytest.raises(ConversationError) as info:
        plan(*entries)
    error = info.value
    assert error.code == "invalid_item"
    assert error.source_id == "src-bad"
    assert "item 21 (source entry 21, src-bad)" in error.message
    assert "name must be a string of 1..128 characters" in error.message
    assert "conv-1" in error.message and "chats.jsonl:3" in error.message

    outcome = plan_or_error(conversation(*entries), Policy())
    assert not isinstance(outcome, ConversationPlan)
    assert outcome.code == "invalid_item" and outcome.source_id == "src-bad"


def test_metadata_truncated_carries_the_values_left_out() -> None:
    extra = {f"k{i:02}": f"v{i}" for i in range(20)} | {"long": "x" * 600}
    conversation = SourceConversation(source_kind="json", id="c", location="f:1", metadata=extra)
    plan = plan_conversation(conversation, Policy())
    [finding] = [f for f in plan.findings if f.code == "metadata_truncated"]
    assert isinstance(finding.value, dict)
    assert finding.value["long"] == "x" * 600
    kept = set(plan.metadata)
    assert set(extra) - kept == set(finding.value)


class _Listed:
    def __init__(self, records: list[SourceConversation]) -> None:
        self.records = records

    def describe(self) -> str:
        return "test"

    def read(self) -> Any:
        return iter(self.records)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("keep_all", [("plan", 1), ("plan", 1), ("plan", 1)]),
        ("first", [("plan", 1), ("plan", 0), ("plan", 1)]),
        ("fail", [("plan", 1), ("error", 0), ("plan", 1)]),
    ],
)
def test_a_source_id_seen_twice_is_a_finding_under_each_policy(
    policy: str, expected: list[tuple[str, int]]
) -> None:
    def conversation(source_id: str, location: str) -> SourceConversation:
        entries: list[Entry] = [Message(role="user", parts=[TextPart(text=location)])]
        return SourceConversation(
            source_kind="json", id=source_id, location=location, entries=entries
        )

    records = [
        conversation("a", "a.jsonl:1"),
        conversation("a", "b.jsonl:4"),
        conversation("b", "b.jsonl:5"),
    ]
    outcomes = list(iterate_plans(_Listed(records), Policy(duplicate_source_id=policy)))
    shapes = [
        ("plan", len(o.items)) if isinstance(o, ConversationPlan) else ("error", 0)
        for o in outcomes
    ]
    assert shapes == expected
    second = outcomes[1]
    codes = (
        [f.code for f in second.findings] if isinstance(second, ConversationPlan) else [second.code]
    )
    assert codes == ["duplicate_source_id"]
    message = second.findings[0].message if isinstance(second, ConversationPlan) else second.message
    assert "the first copy is at a.jsonl:1, this copy is at b.jsonl:4" in message
    if isinstance(second, ConversationPlan):
        assert second.findings[0].value == {"first_location": "a.jsonl:1", "location": "b.jsonl:4"}
    first = outcomes[0]
    assert isinstance(first, ConversationPlan) and first.findings == []
    assert first.location == "a.jsonl:1" and second.location == "b.jsonl:4"


def test_first_copies_gives_back_where_each_id_was_first_read() -> None:
    copies = FirstCopies()
    assert copies.first_location("s-1", "message_store session_id=s-1") is None
    assert copies.first_location("a", "/data/chats.jsonl:3") is None
    assert copies.first_location("b", "/data/chats.jsonl byte 90") is None
    assert copies.first_location("a", "/data/other.jsonl:1") == "/data/chats.jsonl:3"
    assert copies.first_location("b", "x") == "/data/chats.jsonl byte 90"
    assert copies.first_location("s-1", "y") == "message_store session_id=s-1"
