"""Fixtures for the local server's tests: servers on free ports, SDK clients, admin clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from migrate.server.testing import AdminClient, ServerFactory

ClientFactory = Callable[..., OpenAI]


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Call with `ServerOptions` (or its fields) to start a server; returns its base URL."""
    with ServerFactory(tmp_path) as factory:
        yield factory


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One plain server (no faults, no limits) for tests that only read and write data."""
    with ServerFactory(tmp_path_factory.mktemp("shared-server")) as factory:
        yield factory()


@pytest.fixture
def sdk() -> Iterator[ClientFactory]:
    """`sdk(base_url, **options)`: an `OpenAI` client with retries off, closed after the test."""
    clients: list[OpenAI] = []

    def make(base_url: str, **options: object) -> OpenAI:
        settings: dict[str, object] = {"api_key": "test", "max_retries": 0, **options}
        client = OpenAI(base_url=base_url, **settings)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def client(shared_server: str) -> Iterator[OpenAI]:
    """An SDK client on the shared server."""
    with OpenAI(base_url=shared_server, api_key="test", max_retries=0) as shared:
        yield shared


@pytest.fixture
def admin() -> Iterator[Callable[[str], AdminClient]]:
    """`admin(base_url)`: the server's admin endpoints."""
    clients: list[AdminClient] = []

    def make(base_url: str) -> AdminClient:
        clients.append(AdminClient(base_url))
        return clients[-1]

    yield make
    for each in clients:
        each.close()
