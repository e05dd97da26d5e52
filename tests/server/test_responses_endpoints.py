"""`GET /v1/responses/{id}` and `.../input_items` over a directory of stored responses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseIncludable

from migrate.server.testing import AdminClient, ServerFactory
from tests.responses_chain import write_chain
from tests.server.conftest import ClientFactory
from tests.server.test_cli import free_port


@pytest.fixture
def chain_server(tmp_path: Path, local_server: ServerFactory) -> tuple[str, list[str]]:
    ids = write_chain(tmp_path / "stored", turns=60)
    return local_server(responses_dir=tmp_path / "stored"), ids


def test_retrieve_serves_the_stored_response(
    chain_server: tuple[str, list[str]], sdk: ClientFactory
) -> None:
    base_url, ids = chain_server
    response = sdk(base_url).responses.retrieve(ids[5])
    assert response.id == ids[5]
    assert response.previous_response_id == ids[4]
    assert response.output[0].id == "msg_c_out_5"


def test_unknown_response_is_the_real_404(
    chain_server: tuple[str, list[str]], sdk: ClientFactory
) -> None:
    base_url, _ = chain_server
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(base_url).responses.retrieve("resp_gone")
    assert caught.value.body == {
        "message": "Response with id 'resp_gone' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_input_items_page_in_both_orders_with_after(
    chain_server: tuple[str, list[str]], sdk: ClientFactory
) -> None:
    base_url, ids = chain_server
    client = sdk(base_url)
    leaf = ids[-1]
    # 59 turns of 2 items, then the leaf's own input: 119 items.
    first = client.responses.input_items.list(leaf, order="asc", limit=50)
    assert len(first.data) == 50 and first.has_more
    assert first.data[0].id == "msg_c_in_0"
    second = client.responses.input_items.list(leaf, order="asc", limit=50, after=first.data[-1].id)
    third = client.responses.input_items.list(leaf, order="asc", limit=50, after=second.data[-1].id)
    assert (len(second.data), len(third.data)) == (50, 19)
    assert not third.has_more
    assert third.data[-1].id == "msg_c_in_59"
    every = [item.id for page in (first, second, third) for item in page.data]
    assert len(set(every)) == 119
    # The default order is newest first, 20 a page, as the real API does.
    default = client.responses.input_items.list(leaf)
    assert len(default.data) == 20 and default.data[0].id == "msg_c_in_59"
    # The SDK's auto-pagination follows `after` through every page.
    assert [i.id for i in client.responses.input_items.list(leaf, order="asc", limit=7)] == every


def test_unknown_after_and_bad_limit_are_400s(
    chain_server: tuple[str, list[str]], sdk: ClientFactory
) -> None:
    base_url, ids = chain_server
    client = sdk(base_url)
    with pytest.raises(openai.BadRequestError, match="Item with id 'nope' not found"):
        client.responses.input_items.list(ids[3], after="nope")
    with pytest.raises(openai.BadRequestError, match="above maximum value"):
        client.responses.input_items.list(ids[3], limit=101)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_gone")


def test_include_brings_back_what_the_api_hides_by_default(
    tmp_path: Path, local_server: ServerFactory, sdk: ClientFactory
) -> None:
    stored = tmp_path / "stored"
    stored.mkdir()
    items = [
        {
            "id": "msg_1",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:;base64,AAAA"},
            ],
        },
        {
            "id": "fs_1",
            "type": "file_search_call",
            "status": "completed",
            "queries": ["q"],
            "results": [{"file_id": "file-1", "text": "hit"}],
        },
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "enc"},
    ]
    document = {"id": "resp_1", "object": "response", "output": [], "input_items": items}
    (stored / "resp_1.json").write_text(json.dumps(document), encoding="utf-8")
    client = sdk(local_server(responses_dir=stored))
    hidden = [
        json.loads(i.to_json())
        for i in client.responses.input_items.list("resp_1", order="asc").data
    ]
    parts: list[dict[str, Any]] = hidden[0]["content"]
    assert parts[0]["image_url"] is None
    assert "file_data" not in parts[1]
    assert hidden[1]["results"] is None
    assert "encrypted_content" not in hidden[2]
    include: list[ResponseIncludable] = [
        "message.input_image.image_url",
        "file_search_call.results",
        "reasoning.encrypted_content",
    ]
    page = client.responses.input_items.list("resp_1", order="asc", include=include)
    shown = [json.loads(i.to_json()) for i in page.data]
    parts = shown[0]["content"]
    assert parts[0]["image_url"] == "https://example.com/a.png"
    # Inline file data never comes back, whatever the include.
    assert "file_data" not in parts[1]
    assert shown[1]["results"] == [{"file_id": "file-1", "text": "hit"}]
    assert shown[2]["encrypted_content"] == "enc"


def test_response_reads_are_counted_by_route(
    chain_server: tuple[str, list[str]], sdk: ClientFactory
) -> None:
    base_url, ids = chain_server
    client = sdk(base_url)
    client.responses.retrieve(ids[0])
    client.responses.retrieve(ids[1])
    client.responses.input_items.list(ids[1])
    with AdminClient(base_url) as admin:
        requests = admin.stats()["requests"]
    assert requests["GET /v1/responses/{response_id}"] == {"200": 2}
    assert requests["GET /v1/responses/{response_id}/input_items"] == {"200": 1}


def test_migrate_serve_serves_a_directory_of_stored_responses(tmp_path: Path) -> None:
    ids = write_chain(tmp_path / "stored", turns=3)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "migrate",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "rehearsal.db"),
            "--responses",
            str(tmp_path / "stored"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        startup = process.stderr.readline()
        assert f"stored responses from {tmp_path / 'stored'}" in startup
        with openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as client:
            listed = [item.id for item in client.responses.input_items.list(ids[2], order="asc")]
        assert listed == ["msg_c_in_0", "msg_c_out_0", "msg_c_in_1", "msg_c_out_1", "msg_c_in_2"]
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
