"""Fixtures shared by the whole suite; keep them generic."""

from __future__ import annotations

from typing import Any

import pytest
from spec import SPEC_MISSING_REASON, SpecValidator, load_spec_validator, spec_available

from migrate.policy import Policy


@pytest.fixture
def policy() -> Policy:
    """The default transform policy."""
    return Policy()


@pytest.fixture(scope="session")
def spec_check(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SpecValidator, dict[str, Any]]:
    """The official spec validator and spec document (skips if the shared folder is absent)."""
    if not spec_available():
        pytest.skip(SPEC_MISSING_REASON)
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cache_dir = cache.mkdir("openapi-spec") if cache else tmp_path_factory.mktemp("openapi-spec")
    return load_spec_validator(cache_dir)


@pytest.fixture(scope="session")
def spec_validator(spec_check: tuple[SpecValidator, dict[str, Any]]) -> SpecValidator:
    """The official spec validator: `request_problems_json(method, path, body)`."""
    return spec_check[0]
