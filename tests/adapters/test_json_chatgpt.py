"""ChatGPT data export: branches, node kinds, broken trees, and the real sample export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.model import (
    AudioPart,
    HostedToolStep,
    ImagePart,
    Message,
    Reasoning,
    SourceConversation,
    SourceFailure,
    SourceRecord,
    TextPart,
)

ReadJson = Callable[..., list[SourceRecord]]


def _conversations(records: list[SourceRecord]) -> list[SourceConversation]:
    assert all(isinstance(r, SourceConversation) for r in records), records
    return [r for r in records if isinstance(r, SourceConversation)]


def _texts(conversation: SourceConversation) -> list[tuple[str, str]]:
    return [
        (e.role, "".join(p.text for p in e.parts if isinstance(p, TextPart)))
        for e in conversation.entries
        if isinstance(e, Message)
    ]


def _node(
    node_id: str, parent: str | None, children: list[str], role: str | None, text: str
) -> dict[str, Any]:
    message = None
    if role is not None:
        message = {
            "id": node_id,
            "author": {"role": role},
            "content": {"content_type": "text", "parts": [text]},
        }
    return {"id": node_id, "parent": parent, "children": children, "message": message}


def _tree(conversation_id: str, current: str | None, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": conversation_id,
        "title": f"title {conversation_id}",
        "mapping": {n["id"]: n for n in nodes},
    }
    if current is not None:
        record["current_node"] = current
    return record


def _branching(conversation_id: str, current: str | None) -> dict[str, Any]:
    """root -> u1 -> {a1 (first answer), a2 (regenerated) -> u2 -> a3}."""
    return _tree(
        conversation_id,
        current,
        [
            _node("root", None, ["u1"], None, ""),
            _node("u1", "root", ["a1", "a2"], "user", "question"),
            _node("a1", "u1", [], "assistant", "first answer"),
            _node("a2", "u1", ["u2"], "assistant", "second answer"),
            _node("u2", "a2", ["a3"], "user", "follow-up"),
            _node("a3", "u2", [], "assistant", "final"),
        ],
    )


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_sample_current_branch_and_node_kinds(read_json: ReadJson, json_samples: Path) -> None:
    path = json_samples / "chatgpt_conversations.json"
    plot, plant = _conversations(read_json(path))

    assert (plot.id, plot.title, plot.created_at) == (
        "6667a3b9-1c2d-8000-9e3f-4a5b6c7d8e9f",
        "Plot monthly sales",
        1718012345.123456,
    )
    assert plot.location == f"{path}[0]"
    assert plot.metadata["default_model_slug"] == "gpt-4o"
    assert [(n.code, n.count) for n in plot.notes] == [("branch_not_migrated", 1)]
    context, user, step, answer = plot.entries
    assert isinstance(context, Message)
    assert (context.role, context.hidden) == ("developer", True)
    assert "Preferred name: Sam" in context.parts[0].text  # type: ignore[union-attr]
    assert "Keep answers short." in context.parts[0].text  # type: ignore[union-attr]
    # The edited question is on the current branch; the original one is not.
    assert isinstance(user, Message)
    assert user.parts == [TextPart(text="Make a bar chart of sales for Jan-Mar: 120, 95, 143")]
    assert (user.source_id, user.position) == (
        "c3f2e8f4-8b3a-4c2a-9f3d-4e1c9d3a0013",
        "node c3f2e8f4-8b3a-4c2a-9f3d-4e1c9d3a0013",
    )
    assert isinstance(step, HostedToolStep)
    assert step.tool == "python"
    assert step.input is not None and step.input.startswith("import matplotlib.pyplot as plt")
    assert step.outputs == ["358"]
    assert step.metadata["output_source_id"] == "f6c5b1c7-1e6d-4f5d-8c6a-7b4f2a6d0015"
    assert isinstance(answer, Message) and answer.role == "assistant"
    assert answer.created_at == 1718012412.0

    image_message, thoughts, recap, browse, reply = plant.entries
    assert isinstance(image_message, Message)
    assert image_message.parts == [
        ImagePart(reference="file-service://file-Lm3Nb5Vc7Xz9Qw1Er3Ty"),
        TextPart(text="What plant is this? The leaves are turning yellow."),
    ]
    assert image_message.metadata["attachments"][0]["name"] == "IMG_2207.jpeg"
    assert isinstance(thoughts, Reasoning) and thoughts.text is not None
    assert thoughts.text.startswith("Identifying the plant\nHeart-shaped leaves")
    assert isinstance(recap, Reasoning) and recap.text == "Thought for 6 seconds"
    assert isinstance(browse, HostedToolStep)
    assert browse.tool == "browsing"
    assert browse.input == 'search("golden pothos yellow leaves cause")'
    assert "https://extension.example.edu/houseplants/pothos" in browse.outputs[0]
    assert isinstance(reply, Message)
    assert reply.metadata["content_references"][0]["matched_text"] == "【0†source】"
    assert reply.metadata["citations"][0]["start_ix"] == 185
    assert plant.notes == []


def test_sample_all_branches(read_json: ReadJson, json_samples: Path) -> None:
    convs = _conversations(
        read_json(json_samples / "chatgpt_conversations.json", chatgpt_branches="all")
    )
    plot_id = "6667a3b9-1c2d-8000-9e3f-4a5b6c7d8e9f"
    assert [c.id for c in convs] == [
        f"{plot_id}#branch-1",
        f"{plot_id}#branch-2",
        "669915ac-3e4f-8000-b1c2-d3e4f5a6b7c8#branch-1",
    ]
    first, second = convs[0], convs[1]
    assert _texts(first)[1:] == [
        ("user", "Plot sales for Jan-Mar: 120, 95, 143"),
        ("assistant", "Here you go: January 120, February 95, March 143. Want a chart?"),
    ]
    assert (first.metadata["current_branch"], second.metadata["current_branch"]) == (False, True)
    assert first.metadata["source_conversation_id"] == plot_id
    assert all(c.notes == [] for c in convs)


def test_branches_on_a_built_tree(read_json: ReadJson, tmp_path: Path) -> None:
    path = _write(tmp_path / "conversations.json", [_branching("c1", "a1")])
    [current] = _conversations(read_json(path))
    assert _texts(current) == [("user", "question"), ("assistant", "first answer")]
    assert [(n.code, n.count) for n in current.notes] == [("branch_not_migrated", 1)]

    convs = _conversations(read_json(path, chatgpt_branches="all"))
    assert [(c.id, _texts(c)) for c in convs] == [
        ("c1#branch-1", [("user", "question"), ("assistant", "first answer")]),
        (
            "c1#branch-2",
            [
                ("user", "question"),
                ("assistant", "second answer"),
                ("user", "follow-up"),
                ("assistant", "final"),
            ],
        ),
    ]


def test_without_current_node_the_newest_branch_is_read(
    read_json: ReadJson, tmp_path: Path
) -> None:
    path = _write(tmp_path / "conversations.json", [_branching("c1", None)])
    [conversation] = _conversations(read_json(path))
    assert [t for _, t in _texts(conversation)] == [
        "question",
        "second answer",
        "follow-up",
        "final",
    ]
    assert [(n.code, n.count) for n in conversation.notes] == [("branch_not_migrated", 1)]


def test_cycle_and_missing_node_fail_their_conversation_only(
    read_json: ReadJson, tmp_path: Path
) -> None:
    cycle = _tree(
        "loop",
        "b",
        [_node("a", "b", ["b"], "user", "one"), _node("b", "a", ["a"], "assistant", "two")],
    )
    missing = _tree("hole", "x", [_node("x", "ghost", [], "user", "orphan")])
    path = _write(tmp_path / "conversations.json", [cycle, missing, _branching("fine", "a3")])
    first, second, third = read_json(path)
    assert isinstance(first, SourceFailure)
    assert (first.code, first.conversation_id, first.location) == (
        "mapping_cycle",
        "loop",
        f"{path}[0]",
    )
    assert isinstance(second, SourceFailure)
    assert (second.code, second.conversation_id, second.location) == (
        "mapping_missing_node",
        "hole",
        f"{path}[1]",
    )
    assert "ghost" in second.message
    assert isinstance(third, SourceConversation) and third.id == "fine"

    looped, hole, *fine = read_json(path, chatgpt_branches="all")
    assert isinstance(looped, SourceFailure) and looped.code == "mapping_cycle"
    assert isinstance(hole, SourceFailure) and hole.code == "mapping_missing_node"
    assert [c.id for c in _conversations(fine)] == ["fine#branch-1", "fine#branch-2"]


def test_unknown_content_type_keeps_text_and_notes(read_json: ReadJson, tmp_path: Path) -> None:
    node = _node("n1", None, [], "assistant", "")
    node["message"]["content"] = {"content_type": "sonic_hologram", "text": "still readable"}
    path = _write(tmp_path / "conversations.json", [_tree("c", "n1", [node])])
    [conversation] = _conversations(read_json(path))
    assert _texts(conversation) == [("assistant", "still readable")]
    assert [n.code for n in conversation.notes] == ["unknown_content_type"]
    assert "sonic_hologram" in conversation.notes[0].message


def test_message_without_author_role_fails(read_json: ReadJson, tmp_path: Path) -> None:
    node = _node("n1", None, [], "user", "hi")
    del node["message"]["author"]
    path = _write(tmp_path / "conversations.json", [_tree("c", "n1", [node])])
    [failure] = read_json(path)
    assert isinstance(failure, SourceFailure)
    assert (failure.code, failure.conversation_id) == ("missing_role", "c")
    assert "n1" in failure.message


def test_real_export_sample(read_json: ReadJson, real_fixtures: Path) -> None:
    path = real_fixtures / "chatgpt-export-samples" / "0xsalt_sample_conversations.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    convs = _conversations(read_json(path))
    assert len(convs) == len(raw) == 5
    for conversation, record in zip(convs, raw, strict=True):
        assert conversation.source_kind == "chatgpt"
        assert (conversation.id, conversation.title) == (record["id"], record["title"])
        assert conversation.created_at == record["create_time"]
        # No current_node in this export: walk from the root through the children links.
        node = next(n for n in record["mapping"].values() if n["parent"] is None)
        want = []
        while node["children"]:
            node = record["mapping"][node["children"][-1]]
            message = node["message"]
            want.append((message["author"]["role"], "".join(message["content"]["parts"])))
        assert _texts(conversation) == want
        assert len(want) == 4
        assert [e.source_id for e in conversation.entries] == [
            n for n in record["mapping"] if record["mapping"][n]["message"] is not None
        ]
        assert conversation.notes == []


def test_hidden_system_prompt_and_generated_image(read_json: ReadJson, tmp_path: Path) -> None:
    system = _node("s", None, ["u"], "system", "You are a pirate.")
    system["message"]["metadata"] = {"is_visually_hidden_from_conversation": True}
    user = _node("u", "s", ["call"], "user", "Draw a ship")
    call = _node("call", "u", ["img"], "assistant", '{"prompt": "a pirate ship at dawn"}')
    call["message"]["recipient"] = "dalle.text2im"
    image = _node("img", "call", [], "tool", "")
    image["message"]["author"]["name"] = "dalle.text2im"
    image["message"]["content"] = {
        "content_type": "multimodal_text",
        "parts": [
            {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-Ab1"}
        ],
    }
    path = _write(tmp_path / "conversations.json", [_tree("c", "img", [system, user, call, image])])
    [conversation] = _conversations(read_json(path))
    prompt, question, step = conversation.entries
    assert isinstance(prompt, Message)
    assert (prompt.role, prompt.hidden, prompt.parts) == (
        "system",
        True,
        [TextPart(text="You are a pirate.")],
    )
    assert isinstance(question, Message) and question.hidden is False
    assert isinstance(step, HostedToolStep)
    assert (step.tool, step.input) == ("dalle.text2im", '{"prompt": "a pirate ship at dawn"}')
    assert step.outputs == ["[image file-service://file-Ab1]"]
    assert step.metadata["asset_pointers"] == ["file-service://file-Ab1"]


def test_audio_and_video_recordings_are_noted_and_transcripts_kept(
    read_json: ReadJson, tmp_path: Path
) -> None:
    node = _node("n1", None, [], "user", "")
    node["message"]["content"] = {
        "content_type": "multimodal_text",
        "parts": [
            {"content_type": "audio_transcription", "text": "book a table for two"},
            {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://file_a1"},
            {"content_type": "video_container_asset_pointer", "asset_pointer": "sediment://v2"},
        ],
    }
    path = _write(tmp_path / "conversations.json", [_tree("c", "n1", [node])])
    [conversation] = _conversations(read_json(path))
    [message] = conversation.entries
    assert isinstance(message, Message)
    assert [p.transcript for p in message.parts if isinstance(p, AudioPart)] == [
        "book a table for two"
    ]
    assert [n.code for n in conversation.notes] == ["media_not_migrated"] * 2
    assert "sediment://file_a1" in conversation.notes[0].message
