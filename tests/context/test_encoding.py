"""The encoding loads from the installed package, checked by its hash, with the network blocked."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from tiktoken.load import load_tiktoken_bpe

from migrate.context import encoding
from migrate.context.count import count_items
from migrate.context.encoding import o200k_base, read_packaged_ranks
from migrate.context.models import model_spec
from migrate.errors import ConfigError

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


class NetworkBlocked(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Any]]:
    """Every way to open a connection or resolve a name raises, and is recorded."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise NetworkBlocked(f"network access during counting: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # and no cached download to fall back on
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    o200k_base.cache_clear()
    yield attempts
    o200k_base.cache_clear()


def test_the_guard_blocks_connections(no_network: list[Any]) -> None:
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("127.0.0.1", 9))
    assert len(no_network) == 1


def test_counting_needs_no_network(no_network: list[Any]) -> None:
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}
    ]
    assert count_items(items, model_spec("gpt-5")).total == 1 + 4 + 2
    assert o200k_base().name == "o200k_base"
    assert no_network == []


def test_the_packaged_file_is_tiktokens_own() -> None:
    ranks = read_packaged_ranks(O200K_SHA256)
    assert len(ranks) == 199_998
    with pytest.raises(ConfigError, match="is not tiktoken's o200k_base"):
        read_packaged_ranks("0" * 64)


def test_the_ranks_are_those_tiktokens_loader_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = resources.files(encoding.PACKAGE).joinpath(encoding.PACKAGED_FILE).read_bytes()
    plain = tmp_path / "o200k_base.tiktoken"
    plain.write_bytes(gzip.decompress(packaged))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # read the file itself, cache nothing
    assert read_packaged_ranks(O200K_SHA256) == load_tiktoken_bpe(str(plain), O200K_SHA256)


def test_a_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "PACKAGE", "no_such_package_here")
    with pytest.raises(ConfigError, match="encoding file is missing"):
        read_packaged_ranks(O200K_SHA256)
