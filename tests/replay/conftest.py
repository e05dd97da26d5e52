"""Fixtures for the replay tests (the helpers they use are in `tests.replay.helpers`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migrate.server.testing import ServerFactory
from tests.replay.helpers import MARIADB, POSTGRES, fresh_database, write_source


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Call with `ServerOptions` (or its fields) to start a server; returns its base URL."""
    (tmp_path / "servers").mkdir()
    with ServerFactory(tmp_path / "servers") as factory:
        yield factory


@pytest.fixture
def source_file(tmp_path: Path) -> Callable[..., Path]:
    """`source_file(conversations=, messages=)`: a synthetic JSONL source in tmp_path."""

    def make(**options: Any) -> Path:
        return write_source(tmp_path / "source.jsonl", **options)

    return make


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (skips when PostgreSQL is down, fails under CI=true)."""
    yield from fresh_database(POSTGRES, "PostgreSQL on 127.0.0.1:5432")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database (skips when MariaDB is down, fails under CI=true)."""
    yield from fresh_database(MARIADB, "MariaDB on 127.0.0.1:3306")
