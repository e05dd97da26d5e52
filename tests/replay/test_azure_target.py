"""Azure as a target (the local server's Azure flavour): a create carries its first batch and a
job token, so a lost create is found in the conversation list and nothing is orphaned."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from migrate.errors import CallError, ConfigError
from migrate.jobs.models import JobRef
from migrate.jobs.run import run_job
from migrate.jobs.status import job_status
from migrate.replay.azure import azure_client, conversations_url
from migrate.replay.ratelimit import RateLimiter
from migrate.replay.target import Target, TargetConfig, describe_target, open_target
from migrate.server.options import FaultKind
from migrate.server.testing import AdminClient, ServerFactory
from tests.replay.helpers import assert_exactly_once, run_config, server_contents
from tests.replay.test_replay_faults import FAULTS
from tests.replay.test_replay_kill import start, wait_until_started

AZURE = {"flavour": "azure"}


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_kind_lands_each_conversation_once_and_orphans_nothing(
    fault: FaultKind, tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=4, messages=30)
    # The first create, a read-back-free append, and twice in a row (the resend after a fault).
    script = [fault, "none", fault, "none", "none", fault, fault]
    server = {**AZURE, "faults": {"script": script, "stall_seconds": 5, "burst_length": 2}}
    config = run_config(source, tmp_path / "job", concurrency=1, timeout=0.5, server=server)
    summary = run_job(config)
    assert summary.exit_code == 0, summary
    assert summary.retries >= 4
    assert summary.possible_orphans == 0
    assert_exactly_once(tmp_path / "job", migrated=4)
    assert server_contents(tmp_path / "job").empty == 0


@pytest.mark.parametrize("flavour", ["openai", "azure"])
def test_an_ambiguous_create_is_found_on_azure_and_an_orphan_elsewhere(
    flavour: str, tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=2, messages=4)
    server = {"flavour": flavour, "faults": {"script": ["drop_after_commit"]}}
    summary = run_job(run_config(source, tmp_path / "job", concurrency=1, server=server))
    assert summary.exit_code == 0, summary
    assert_exactly_once(tmp_path / "job", migrated=2)
    if flavour == "azure":
        # The dropped create made the conversation with its items; it was found, not resent.
        assert summary.possible_orphans == 0
        assert summary.reconciliations >= 1
        assert server_contents(tmp_path / "job").conversations == 2
    else:
        assert summary.possible_orphans == 1


def test_a_create_applied_late_is_looked_up_only_after_the_settle_time(
    tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=2, messages=4)
    # The first create is held 0.6 s before the server applies it; the client gives up at 0.2 s.
    server = {**AZURE, "faults": {"script": ["apply_late"], "late_seconds": 0.6}}
    config = run_config(
        source, tmp_path / "job", concurrency=1, timeout=0.2, settle=1.0, server=server
    )
    summary = run_job(config)
    assert summary.exit_code == 0, summary
    # Looked up once it had landed: found, not sent again (no second conversation).
    assert summary.possible_orphans == 0
    assert summary.reconciliations >= 1
    assert_exactly_once(tmp_path / "job", migrated=2)
    assert server_contents(tmp_path / "job").conversations == 2


def writes_and_reads(base_url: str, api_key: str = "test") -> tuple[int, int]:
    with AdminClient(base_url, api_key=api_key) as admin:
        seen: dict[str, dict[str, int]] = admin.stats()["requests"]
    writes = sum(sum(s.values()) for route, s in seen.items() if route.startswith("POST "))
    reads = sum(sum(s.values()) for route, s in seen.items() if route.startswith("GET "))
    return writes, reads


def test_azure_target_sends_one_call_fewer_per_conversation(
    tmp_path: Path,
    source_file: Callable[..., Path],
    local_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-test-key")
    conversations = 5
    source = source_file(conversations=conversations, messages=30)
    openai_url = local_server()
    azure_url = local_server(flavour="azure", api_key="azure-test-key")
    jobs: dict[str, Any] = {}
    for name, target in (
        ("openai", TargetConfig(kind="openai", base_url=openai_url, timeout=10)),
        ("azure", TargetConfig(kind="azure", azure_endpoint=azure_url, timeout=10)),
    ):
        jobs[name] = run_job(run_config(source, tmp_path / name, target=target))
        assert jobs[name].exit_code == 0, jobs[name]
    openai_writes, openai_reads = writes_and_reads(openai_url)
    azure_writes, azure_reads = writes_and_reads(azure_url, "azure-test-key")
    assert azure_writes == openai_writes - conversations
    # The create answers with the conversation only: its first batch's ids are left for
    # `migrate verify` to read, so no listing is made during the run.
    assert azure_reads == openai_reads
    assert jobs["azure"].calls == jobs["openai"].calls - conversations
    assert jobs["azure"].items.unread_ids == 20 * conversations
    assert "azure-test-key" not in jobs["azure"].target


def test_the_description_names_the_endpoint_never_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "sk-secret-azure")
    endpoint = "https://contoso.openai.azure.com/?api-version=preview"
    client, description = azure_client(endpoint, timeout=5)
    asyncio.run(client.close())
    assert description == (
        "Azure OpenAI Conversations at https://contoso.openai.azure.com/openai/v1 "
        "(api-key from AZURE_OPENAI_API_KEY)"
    )
    assert "sk-secret" not in describe_target(TargetConfig(kind="azure", azure_endpoint=endpoint))


@pytest.mark.parametrize(("version", "kind"), [("preview", None), ("2024-10-21", "rejected")])
def test_the_endpoint_query_is_sent_as_a_query_on_every_call(
    version: str,
    kind: str | None,
    local_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    endpoint = local_server(flavour="azure", api_key="k")
    client, description = azure_client(f"{endpoint}/?api-version={version}", timeout=5)
    target = Target(client, limiter=RateLimiter(), timeout=5, description=description)

    async def create_and_list() -> int:
        try:
            conversation_id = await target.create_conversation(
                {}, [{"role": "user", "content": "hi"}]
            )
            return len(await target.list_items(conversation_id))
        finally:
            await client.close()

    if kind is None:
        assert asyncio.run(create_and_list()) == 1
    else:
        # The server saw the api-version (a query glued into the path would be a 404).
        with pytest.raises(CallError) as error:
            asyncio.run(create_and_list())
        assert error.value.kind == kind
        assert "2024-10-21" in error.value.message


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://r.openai.azure.com", "https://r.openai.azure.com/openai/v1"),
        ("https://r.openai.azure.com/openai/v1/", "https://r.openai.azure.com/openai/v1"),
        (
            "https://r.services.ai.azure.com/api/projects/p",
            "https://r.services.ai.azure.com/api/projects/p/openai/v1",
        ),
    ],
)
def test_resource_and_project_endpoints_reach_openai_v1(endpoint: str, expected: str) -> None:
    assert conversations_url(endpoint) == (expected, {})


def test_azure_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="--azure-endpoint"):
        asyncio.run(_open(TargetConfig(kind="azure")))


async def _open(config: TargetConfig) -> None:
    async with open_target(config, job_dir=None):
        pass


class FakeCredential:
    """An `azure-identity` credential stand-in: hands out a fixed token, counts the calls."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.mark.parametrize(("token", "accepted"), [("entra-token", True), ("wrong", False)])
def test_without_a_key_entra_id_tokens_are_sent_as_bearer(
    token: str,
    accepted: bool,
    local_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    endpoint = local_server(flavour="azure", api_key="entra-token")
    credential = FakeCredential(token)
    client, description = azure_client(endpoint, timeout=5, credential=credential)
    assert description.endswith("(Microsoft Entra ID)")
    target = Target(client, limiter=RateLimiter(), timeout=5, description=description)

    async def create() -> str:
        try:
            return await target.create_conversation({"k": "v"})
        finally:
            await client.close()

    if accepted:
        assert asyncio.run(create()).startswith("conv_")
    else:
        with pytest.raises(CallError) as error:
            asyncio.run(create())
        assert error.value.kind == "fatal"
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)]


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--flavour", "azure"], ["--create-with-items"]])
def test_kill_9_then_resume_with_items_in_the_create_lands_everything_once(
    flags: list[str], tmp_path: Path, source_file: Callable[..., Path]
) -> None:
    source = source_file(conversations=60, messages=30)
    job_dir = tmp_path / "job"
    log = tmp_path / "migrate.log"
    chance = random.Random(20270331)
    killed = 0
    for round_number in range(4):
        if round_number == 0:
            arguments = ["run", str(source), "--job-dir", str(job_dir), *flags]
        else:
            arguments = ["resume", str(job_dir)]
        offset = log.stat().st_size if log.exists() else 0
        process = start(
            [*arguments, "--concurrency", "4", "--latency-ms", "5", "--settle", "0.2"], log
        )
        wait_until_started(log, offset, process)
        time.sleep(chance.uniform(0.0, 0.6))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
    assert killed >= 2, log.read_text(errors="replace")
    final = start(["resume", str(job_dir), "--settle", "0.2"], log)
    assert final.wait(timeout=120) == 0, log.read_text(errors="replace")
    summary = job_status(JobRef(job_dir=job_dir))
    # Every create carried items: nothing a kill left behind is empty.
    assert summary.possible_orphans == 0
    if flags[0] == "--flavour":
        # Every resume wrote to the Azure flavour again (its rehearsal flags do not drop it).
        starts = [line for line in log.read_text().splitlines() if line.startswith("target: local")]
        assert len(starts) == 5 and all("(Azure flavour)" in line for line in starts), starts
        assert summary.possible_orphans_with_items == 0
    # Verify reads the ids the creates left unread; OpenAI's orphans with items are counted.
    assert_exactly_once(job_dir, migrated=60)
    assert server_contents(job_dir).empty == 0
