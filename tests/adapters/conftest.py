"""Fixtures for the adapter tests: sample and real-fixture locations, a one-call reader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters import JsonSourceConfig, open_source
from adapters.model import SourceRecord

SAMPLES_JSON = Path(__file__).resolve().parents[2] / "samples" / "json"
REAL_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real"

ReadJson = Callable[..., list[SourceRecord]]


def read_json_records(path: Path, **options: Any) -> list[SourceRecord]:
    """Every record the JSON source yields for `path`."""
    return list(open_source(JsonSourceConfig(path=path, **options)).read())


@pytest.fixture
def json_samples() -> Path:
    """The committed JSON samples folder."""
    return SAMPLES_JSON


@pytest.fixture
def real_fixtures() -> Path:
    """The real recorded data committed under tests/fixtures/real (read in place)."""
    return REAL_FIXTURES


@pytest.fixture
def read_json() -> ReadJson:
    """Read a JSON source to a list: `read_json(path, format=..., ...)`."""
    return read_json_records
