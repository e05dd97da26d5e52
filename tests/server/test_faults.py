"""Injected faults: each kind does what it says, and what was committed is there exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from migrate.server.options import FaultSettings, ServerOptions
from migrate.server.testing import AdminClient, ServerFactory

ClientFactory = Callable[..., OpenAI]


def batch(label: str, size: int = 3) -> Any:
    return [{"type": "message", "role": "user", "content": f"{label}-{n}"} for n in range(size)]


def texts(client: OpenAI, conversation_id: str) -> list[str]:
    items: list[Any] = list(client.conversations.items.list(conversation_id, order="asc"))
    return [item.content[0].text for item in items]


@pytest.fixture
def server(local_server: ServerFactory) -> str:
    return local_server()


@pytest.fixture
def api(server: str, sdk: ClientFactory) -> OpenAI:
    return sdk(server)


@pytest.fixture
def control(server: str, admin: Callable[[str], AdminClient]) -> AdminClient:
    return admin(server)


def test_error_before_writes_nothing(api: OpenAI, control: AdminClient) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["error_before", "error_before"])
    with pytest.raises(openai.InternalServerError) as failed:
        api.conversations.items.create(conversation.id, items=batch("a"))
    assert failed.value.status_code == 500
    assert failed.value.type == "server_error"
    assert texts(api, conversation.id) == []
    with pytest.raises(openai.InternalServerError):
        api.conversations.create()
    stats = control.stats()
    assert stats["conversations_created"] == 1
    assert stats["items_committed"] == 0
    assert stats["faults"]["error_before"] == 2


def test_error_after_commit_keeps_the_write(api: OpenAI, control: AdminClient) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["error_after_commit"])
    with pytest.raises(openai.InternalServerError):
        api.conversations.items.create(conversation.id, items=batch("a"))
    assert texts(api, conversation.id) == ["a-0", "a-1", "a-2"]
    last = control.log()[-1]
    assert last["operation"] == "items.create"
    assert last["fault"] == "error_after_commit"
    assert len(last["item_ids"]) == 3


def test_drop_after_commit_closes_the_connection_after_writing_once(
    api: OpenAI, control: AdminClient
) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["drop_after_commit"])
    with pytest.raises(openai.APIConnectionError) as dropped:
        api.conversations.items.create(conversation.id, items=batch("a"))
    assert not isinstance(dropped.value, openai.APITimeoutError)
    assert texts(api, conversation.id) == ["a-0", "a-1", "a-2"]
    stats = control.stats()
    assert stats["faults"]["drop_after_commit"] == 1
    assert stats["requests"]["POST /v1/conversations/{conversation_id}/items"] == {"dropped": 1}


def test_drop_after_create_leaves_a_conversation_the_client_never_saw(
    api: OpenAI, control: AdminClient
) -> None:
    control.set_faults(script=["drop_after_commit"])
    with pytest.raises(openai.APIConnectionError):
        api.conversations.create(metadata={"source_id": "42"})
    log = control.log()
    assert [entry["operation"] for entry in log] == ["conversations.create"]
    orphan = api.conversations.retrieve(log[0]["conversation_id"])
    assert orphan.metadata == {"source_id": "42"}


def test_blind_sdk_retry_after_a_drop_duplicates_the_batch(
    server: str, sdk: ClientFactory, control: AdminClient
) -> None:
    """The hazard the fault exists for: the SDK's own retry appends the batch a second time."""
    retrying = sdk(server, max_retries=1)
    conversation = retrying.conversations.create()
    control.set_faults(script=["drop_after_commit"])
    retrying.conversations.items.create(conversation.id, items=batch("a"))
    assert texts(retrying, conversation.id) == ["a-0", "a-1", "a-2"] * 2


def test_stall_after_commit_times_the_client_out_after_writing(
    local_server: ServerFactory, sdk: ClientFactory, admin: Callable[[str], AdminClient]
) -> None:
    server = local_server(ServerOptions(faults=FaultSettings(stall_seconds=30)))
    impatient = sdk(server, timeout=0.5)
    conversation = impatient.conversations.create()
    admin(server).set_faults(FaultSettings(script=("stall_after_commit",), stall_seconds=30))
    with pytest.raises(openai.APITimeoutError):
        impatient.conversations.items.create(conversation.id, items=batch("a"))
    assert texts(impatient, conversation.id) == ["a-0", "a-1", "a-2"]
    assert admin(server).stats()["faults"]["stall_after_commit"] == 1


def test_burst_503_hits_the_next_requests_of_any_kind(api: OpenAI, control: AdminClient) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["burst_503"], burst_length=3)
    with pytest.raises(openai.InternalServerError) as first:
        api.conversations.items.create(conversation.id, items=batch("a"))
    assert first.value.status_code == 503
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as again:
            api.conversations.items.list(conversation.id)
        assert again.value.status_code == 503
    assert texts(api, conversation.id) == []
    assert control.stats()["faults"]["burst_503"] == 3


def test_script_steps_apply_to_writes_in_order(api: OpenAI, control: AdminClient) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["none", "error_before", "none"])
    api.conversations.items.create(conversation.id, items=batch("a"))
    api.conversations.items.list(conversation.id)  # reads do not consume the script
    api.conversations.retrieve(conversation.id)
    with pytest.raises(openai.InternalServerError):
        api.conversations.items.create(conversation.id, items=batch("b"))
    assert control.faults().script == ("none",)
    api.conversations.items.create(conversation.id, items=batch("c"))
    assert texts(api, conversation.id) == ["a-0", "a-1", "a-2", "c-0", "c-1", "c-2"]
    assert control.faults().script == ()


def test_after_commit_fault_spares_a_rejected_request(api: OpenAI, control: AdminClient) -> None:
    conversation = api.conversations.create()
    control.set_faults(script=["error_after_commit"])
    with pytest.raises(openai.BadRequestError):
        api.conversations.items.create(conversation.id, items=[])
    assert control.stats()["faults"]["error_after_commit"] == 0


def outcomes(base_url: str, sdk: ClientFactory, count: int) -> list[str]:
    client = sdk(base_url)
    seen: list[str] = []
    for _ in range(count):
        try:
            client.conversations.create()
            seen.append("ok")
        except openai.APIStatusError as exc:
            seen.append(str(exc.status_code))
    return seen


def test_fault_rates_are_deterministic_under_a_seed(
    local_server: ServerFactory, sdk: ClientFactory
) -> None:
    def options(seed: int) -> ServerOptions:
        rates = {"error_before": 0.3, "error_after_commit": 0.3}
        return ServerOptions(seed=seed, faults=FaultSettings.model_validate({"rates": rates}))

    first = outcomes(local_server(options(7)), sdk, 30)
    second = outcomes(local_server(options(7)), sdk, 30)
    other = outcomes(local_server(options(8)), sdk, 30)
    assert first == second
    assert first != other
    assert {"ok", "500"} == set(first)


def test_admin_rejects_bad_fault_settings(control: AdminClient) -> None:
    for bad in (
        b'{"rates": {"error_before": 1.5}}',
        b'{"rates": {"error_before": 0.6, "burst_503": 0.6}}',
        b'{"script": ["explode"]}',
        b'{"unknown": 1}',
    ):
        response = control._client.post("/_admin/faults", content=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert control.faults() == FaultSettings()


def test_apply_late_applies_the_write_after_the_client_gave_up(
    server: str, sdk: ClientFactory, control: AdminClient
) -> None:
    api = sdk(server, timeout=0.3)
    conversation = api.conversations.create()
    control.set_faults(script=["apply_late"], late_seconds=1.0)
    with pytest.raises(openai.APITimeoutError):
        api.conversations.items.create(conversation.id, items=batch("late"))
    # The client is gone; nothing is written yet, and then the write lands anyway.
    assert texts(api, conversation.id) == []
    deadline = time.monotonic() + 20
    while not texts(api, conversation.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert texts(api, conversation.id) == ["late-0", "late-1", "late-2"]
    assert control.stats()["faults"]["apply_late"] == 1


def test_apply_late_answers_a_client_that_waits(
    server: str, sdk: ClientFactory, control: AdminClient
) -> None:
    api = sdk(server, timeout=10)
    conversation = api.conversations.create()
    control.set_faults(script=["apply_late"], late_seconds=0.2)
    created = api.conversations.items.create(conversation.id, items=batch("slow", 2))
    assert [item.id for item in created.data] == [
        item.id for item in api.conversations.items.list(conversation.id, order="asc")
    ]


def test_fault_changes_need_the_admin_switch_without_a_key(
    local_server: ServerFactory, admin: Callable[[str], AdminClient]
) -> None:
    closed = admin(local_server(admin_changes=False))
    assert closed.faults().rates == {}
    with pytest.raises(httpx2.HTTPStatusError) as refused:
        closed.set_faults(script=["apply_late"])
    assert refused.value.response.status_code == 403
    assert closed.faults().script == ()
