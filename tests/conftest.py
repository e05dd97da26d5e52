"""Fixtures shared by the whole suite; keep them generic."""

from __future__ import annotations

from typing import Any

import pytest

from migrate.transform.policy import Policy
from tests.spec import SpecValidator, load_spec_validator


@pytest.fixture
def policy() -> Policy:
    """The default transform policy."""
    return Policy()


@pytest.fixture(scope="session")
def spec_check() -> tuple[SpecValidator, dict[str, Any]]:
    """The official spec validator and the relaxed spec document it validates against."""
    return load_spec_validator()


@pytest.fixture(scope="session")
def spec_validator(spec_check: tuple[SpecValidator, dict[str, Any]]) -> SpecValidator:
    """The official spec validator: `request_problems_json(method, path, body)`."""
    return spec_check[0]
