"""Drive the local server from tests: start servers on demand and use its admin endpoints.

A pytest fixture over `ServerFactory` takes three lines (see `tests/server/conftest.py`):

    @pytest.fixture
    def local_server(tmp_path):
        with ServerFactory(tmp_path) as factory:
            yield factory

and a test then calls `base_url = local_server(ServerOptions(rpm=60))`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from migrate.server.embedded import EmbeddedServer
from migrate.server.options import FaultSettings, ServerOptions


def admin_root(base_url: str) -> str:
    """The server root (admin endpoints live at `/_admin`, beside `/v1`)."""
    return base_url.removesuffix("/").removesuffix("/v1")


class AdminClient:
    """The `/_admin` endpoints: counters, the commit log, fault settings, draining the limit."""

    def __init__(self, base_url: str, *, api_key: str = "test", timeout: float = 10.0) -> None:
        self._client = httpx2.Client(
            base_url=admin_root(base_url),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Requests by route and status, faults injected, items and conversations committed."""
        return self._get("/_admin/stats")

    def log(self, *, after: int = 0) -> list[dict[str, Any]]:
        """Committed writes, oldest first."""
        data: list[dict[str, Any]] = self._get("/_admin/log", params={"after": after})["data"]
        return data

    def faults(self) -> FaultSettings:
        """The fault settings in force (the script shows only the steps not yet used)."""
        return FaultSettings.model_validate(self._get("/_admin/faults"))

    def set_faults(self, settings: FaultSettings | None = None, **fields: Any) -> FaultSettings:
        """Replace the fault settings, e.g. `set_faults(script=["drop_after_commit"])`."""
        chosen = settings or FaultSettings.model_validate(fields)
        response = self._client.post("/_admin/faults", content=chosen.model_dump_json())
        response.raise_for_status()
        return FaultSettings.model_validate(response.json())

    def drain(self, seconds: float) -> None:
        """Have another client of the account spend the whole rate limit for `seconds`."""
        response = self._client.post("/_admin/drain", json={"seconds": seconds})
        response.raise_for_status()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._client.get(path, params=params)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


class ServerFactory:
    """Starts local servers on free ports, each with its own database, and stops them all."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._servers: list[EmbeddedServer] = []

    def __call__(self, options: ServerOptions | None = None, **fields: Any) -> str:
        """Start a server (options, or ServerOptions fields as keywords); returns its base URL."""
        chosen = options or ServerOptions.model_validate(fields)
        db_path = self._directory / f"server-{len(self._servers)}.db"
        server = EmbeddedServer(chosen, db_path)
        server.start()
        self._servers.append(server)
        return server.base_url

    def server(self, base_url: str) -> EmbeddedServer:
        """The running server behind `base_url` (for its store and counters)."""
        for server in self._servers:
            if server.base_url == base_url:
                return server
        raise KeyError(base_url)

    def close(self) -> None:
        """Stop every server started here."""
        while self._servers:
            self._servers.pop().stop()

    def __enter__(self) -> ServerFactory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
