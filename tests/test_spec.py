"""Planned requests checked against OpenAI's official OpenAPI spec, and real traffic against ours.

One allowance, documented in `spec.py`: the assistant message with `output_text` parts and no
`id`/`status`/`logprobs` that the real API accepts is converted to the spec's full form before
validation. The tests below also prove that this is the only shape needing it.

`policy.refusal = "part"` is left out of the spec run on purpose: a `refusal` part without a
server id is outside the spec (it exists only in the full `OutputMessage`) and its acceptance by
the live API is unverified, which is why that policy is opt-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from adapters.model import (
    Annotation,
    AudioPart,
    Entry,
    FilePart,
    HostedToolStep,
    ImagePart,
    Message,
    Reasoning,
    RefusalPart,
    SourceConversation,
    TextPart,
    ToolCall,
    ToolResult,
)
from migrate.plan.model import ConversationPlan, PlannedRequest
from migrate.plan.planner import plan_conversation
from migrate.plan.validate import batch_problems, metadata_problems
from migrate.transform.policy import Policy
from tests.spec import (
    REAL_FIXTURES,
    SpecValidator,
    as_spec_body,
    as_spec_item,
    needs_allowance,
)

ITEMS_URL = "/conversations/conv_spec/items"

# Policies that between them make the transform emit every item and part kind it can.
POLICIES = {
    "default": Policy(unknown_role="user"),
    "string-content": Policy(
        assistant_content="string", tool_call_without_output="text", unknown_role="user"
    ),
    "text-everything": Policy(reasoning="text", hidden_messages="keep", unknown_role="user"),
}


def every_kind_conversation() -> SourceConversation:
    """One conversation touching every rule that emits something."""
    entries: list[Entry] = [
        Message(role="system", parts=[TextPart(text="Be brief.")], hidden=True),
        Message(role="developer", parts=[TextPart(text="Cite sources.")]),
        Message(
            role="user",
            name="ana",
            parts=[
                TextPart(text="Compare these."),
                ImagePart(url="https://example.com/a.png"),
                ImagePart(url="data:image/png;base64,iVBORw0KGgo=", detail="high"),
                ImagePart(file_id="file-img", detail="low"),
                ImagePart(reference="file-service://file-abc"),
                FilePart(file_id="file-pdf"),
                FilePart(file_data="data:application/pdf;base64,JVBERi0=", filename="a.pdf"),
                FilePart(file_url="https://example.com/b.pdf", filename="b.pdf"),
                AudioPart(data="UklGRg==", format="wav", transcript="and this one"),
            ],
        ),
        Message(role="chatbot", parts=[TextPart(text="unknown role")]),
        Reasoning(text="Looking at both."),
        ToolCall(call_id="call_weather", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(name="run_sql", arguments="SELECT 1", tool_type="custom"),
        ToolCall(call_id="call_never", name="lookup", arguments="{}"),
        ToolResult(call_id="call_weather", output='{"temp":20}'),
        ToolResult(output="1", tool_type="custom"),
        ToolResult(call_id="call_unknown", output="stray"),
        HostedToolStep(
            tool="code_interpreter", input="print(2)", outputs=["2"], file_ids=["file-x"]
        ),
        Message(
            role="assistant",
            parts=[
                TextPart(
                    text="Per the report【4:0†source】 and the web.",
                    annotations=[
                        Annotation(
                            kind="file_citation",
                            marker="【4:0†source】",
                            file_id="file-r",
                            filename="report.pdf",
                            index=14,
                        ),
                        Annotation(kind="file_path", file_id="file-p", start_index=3),
                        Annotation(
                            kind="url_citation",
                            url="https://example.com/",
                            title="Example",
                            start_index=0,
                            end_index=7,
                        ),
                        Annotation(
                            kind="container_file_citation",
                            container_id="cntr_1",
                            file_id="cfile_1",
                            filename="chart.png",
                            start_index=8,
                            end_index=14,
                        ),
                        Annotation(kind="file_citation", file_id="file-no-name", start_index=1),
                    ],
                ),
                RefusalPart(refusal="I won't share the raw data."),
                ImagePart(file_id="file-chart"),
                FilePart(file_id="file-out", filename="out.csv"),
                AudioPart(audio_id="audio_1", transcript="spoken answer"),
            ],
        ),
    ]
    return SourceConversation(
        source_kind="chat_completions",
        id="spec-conversation",
        location="spec.jsonl:1",
        title="Every kind",
        created_at=1_700_000_000,
        metadata={"team": "support", "tags": ["a", "b"]},
        entries=entries,
    )


def long_conversation() -> SourceConversation:
    """More than one batch, so every request kind appears."""
    entries: list[Entry] = []
    for i in range(30):
        entries.append(Message(role="user", parts=[TextPart(text=f"question {i}")]))
        entries.append(ToolCall(call_id=f"call_{i}", name="search", arguments="{}"))
        entries.append(ToolResult(call_id=f"call_{i}", output=f"result {i}"))
        entries.append(Message(role="assistant", parts=[TextPart(text=f"answer {i}")]))
    return SourceConversation(source_kind="sql", id="long", location="t id=1", entries=entries)


def planned() -> Iterator[tuple[str, ConversationPlan]]:
    for name, policy in POLICIES.items():
        for conversation in (every_kind_conversation(), long_conversation()):
            yield f"{name}/{conversation.id}", plan_conversation(conversation, policy)


def spec_problems(validator: SpecValidator, request: PlannedRequest) -> list[str]:
    path = request.path.format(conversation_id="conv_spec")
    return validator.request_problems_json(request.method, path, as_spec_body(request.body))


def emitted_kinds(plans: list[ConversationPlan]) -> set[str]:
    kinds: set[str] = set()
    for plan in plans:
        for planned_item in plan.items:
            item = planned_item.item
            kinds.add(item["type"])
            if item["type"] != "message":
                continue
            kinds.add(f"role:{item['role']}")
            content = item["content"]
            if isinstance(content, str):
                kinds.add(f"{item['role']}:string")
                continue
            for part in content:
                kinds.add(f"part:{part['type']}")
                if part["type"] == "input_image":
                    kinds.add("input_image:" + ("image_url" if "image_url" in part else "file_id"))
                if part["type"] == "input_file":
                    kinds.update(
                        f"input_file:{key}"
                        for key in ("file_id", "file_data", "file_url")
                        if key in part
                    )
                kinds.update(f"annotation:{a['type']}" for a in part.get("annotations", []))
    return kinds


EXPECTED_KINDS = {
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "role:user",
    "role:system",
    "role:developer",
    "role:assistant",
    "assistant:string",
    "part:input_text",
    "part:input_image",
    "part:input_file",
    "part:output_text",
    "input_image:image_url",
    "input_image:file_id",
    "input_file:file_id",
    "input_file:file_data",
    "input_file:file_url",
    "annotation:file_citation",
    "annotation:file_path",
    "annotation:url_citation",
    "annotation:container_file_citation",
}


def test_the_spec_run_covers_every_kind_the_transform_emits() -> None:
    assert emitted_kinds([plan for _, plan in planned()]) == EXPECTED_KINDS


def test_every_planned_request_is_valid_under_the_official_spec(
    spec_validator: SpecValidator,
) -> None:
    checked = 0
    for name, plan in planned():
        requests = plan.requests()
        assert len(requests) >= 2
        for number, request in enumerate(requests):
            assert spec_problems(spec_validator, request) == [], f"{name} request {number}"
            checked += 1
    assert checked >= 12


def test_the_allowance_is_needed_and_nothing_else_is(spec_validator: SpecValidator) -> None:
    allowed = plain = 0
    for _, plan in planned():
        for planned_item in plan.items:
            item = planned_item.item
            raw = spec_validator.request_problems_json("POST", ITEMS_URL, {"items": [item]})
            if needs_allowance(item):
                allowed += 1
                assert raw, "the allowance is only for what the spec rejects"
                converted = {"items": [as_spec_item(item)]}
                assert spec_validator.request_problems_json("POST", ITEMS_URL, converted) == []
            else:
                plain += 1
                assert raw == [], item
    assert allowed > 0 and plain > 0


def test_the_allowance_hides_no_other_problem(spec_validator: SpecValidator) -> None:
    bad_annotation = {
        "type": "message",
        "role": "assistant",
        "content": [
            {
                "type": "output_text",
                "text": "x",
                "annotations": [{"type": "file_citation", "file_id": "f"}],
            }
        ],
    }
    assert needs_allowance(bad_annotation)
    assert spec_validator.request_problems_json(
        "POST", ITEMS_URL, {"items": [as_spec_item(bad_annotation)]}
    )
    with_id = {**bad_annotation, "id": "msg_1"}
    assert not needs_allowance(with_id)
    assert as_spec_item(with_id) == with_id


def test_the_spec_validator_rejects_what_the_api_rejects(spec_validator: SpecValidator) -> None:
    message = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}
    too_many = spec_validator.request_problems_json("POST", ITEMS_URL, {"items": [message] * 21})
    assert any("maxItems=20" in problem for problem in too_many)
    no_detail = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "file_id": "f"}],
    }
    assert spec_validator.request_problems_json("POST", ITEMS_URL, {"items": [no_detail]})


def test_a_refusal_part_is_outside_the_spec(spec_validator: SpecValidator) -> None:
    conversation = SourceConversation(
        source_kind="t",
        id="r",
        location="l",
        entries=[Message(role="assistant", parts=[RefusalPart(refusal="No.")])],
    )
    plan = plan_conversation(conversation, Policy(refusal="part"))
    item = plan.items[0].item
    assert item["content"] == [{"type": "refusal", "refusal": "No."}]
    assert not needs_allowance(item)
    assert spec_validator.request_problems_json("POST", ITEMS_URL, {"items": [item]})


SCHEMA_OF_ITEM = {
    "message": "EasyInputMessage",
    "function_call": "FunctionToolCall",
    "function_call_output": "FunctionCallOutputItemParam",
    "custom_tool_call": "CustomToolCall",
    "custom_tool_call_output": "CustomToolCallOutput",
}
SCHEMA_OF_PART = {
    "input_text": "InputTextContent",
    "input_image": "InputImageContent",
    "input_file": "InputFileContent",
    "output_text": "OutputTextContent",
    "refusal": "RefusalContent",
}
SCHEMA_OF_ANNOTATION = {
    "file_citation": "FileCitationBody",
    "file_path": "FilePath",
    "url_citation": "UrlCitationBody",
    "container_file_citation": "ContainerFileCitationBody",
}


def test_we_send_only_keys_the_spec_defines(
    spec_check: tuple[SpecValidator, dict[str, Any]],
) -> None:
    # the spec's schemas are open (extra keys validate), but the API rejects unknown parameters
    schemas = spec_check[1]["components"]["schemas"]

    def undefined(obj: Mapping[str, Any], schema: str) -> set[str]:
        return set(obj) - set(schemas[schema]["properties"])

    checked = 0
    for _, plan in planned():
        for planned_item in plan.items:
            item = planned_item.item
            assert undefined(item, SCHEMA_OF_ITEM[item["type"]]) == set(), item
            checked += 1
            if item["type"] != "message" or isinstance(item["content"], str):
                continue
            for part in item["content"]:
                assert undefined(part, SCHEMA_OF_PART[part["type"]]) == set(), part
                for annotation in part.get("annotations", []):
                    assert undefined(annotation, SCHEMA_OF_ANNOTATION[annotation["type"]]) == set()
    assert checked > 100


# --- real recorded traffic passes our own validator --------------------------------------------

RECORDINGS = REAL_FIXTURES / "openai-dotnet-conversations-responses"


def test_real_accepted_requests_pass_our_validator() -> None:
    checked_items = checked_metadata = 0
    for path in sorted(RECORDINGS.glob("*.json")):
        # one recording is one conversation (or one chain of responses): call ids carry over
        seen_call_ids: set[str] = set()
        for entry in json.loads(path.read_text(encoding="utf-8"))["Entries"]:
            body, response = entry["RequestBody"], entry["ResponseBody"]
            if entry["RequestMethod"] != "POST" or entry["StatusCode"] != 200 or not body:
                continue
            where = f"{path.name} {entry['RequestUri']}"
            if "metadata" in body:
                assert metadata_problems(body["metadata"]) == [], where
                checked_metadata += 1
            items = body.get("items", body.get("input"))
            if isinstance(items, list):
                assert batch_problems(items, seen_call_ids) == [], where
                checked_items += len(items)
            if isinstance(response, dict):
                seen_call_ids.update(
                    output["call_id"]
                    for output in response.get("output", [])
                    if output.get("type") == "function_call"
                )
    assert checked_items >= 8
    assert checked_metadata >= 2
