"""The model table and the documented image rules."""

from __future__ import annotations

import pytest

from migrate.context.count import image_tokens
from migrate.context.models import model_spec
from migrate.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "row", "limit"),
    [
        ("gpt-5", "gpt-5", 272_000),
        ("gpt-5-2025-08-07", "gpt-5", 272_000),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini", 272_000),
        ("gpt-5.2", "gpt-5.2", 272_000),
        ("gpt-5.4", "gpt-5.4", 1_050_000),
        ("gpt-5.5", "gpt-5.5", 1_050_000),
        ("gpt-4.1-2025-04-14", "gpt-4.1", 1_047_576),
        ("gpt-4o", "gpt-4o", 128_000),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", 128_000),
    ],
)
def test_names_resolve_to_their_row(name: str, row: str, limit: int) -> None:
    spec = model_spec(name)
    assert (spec.name, spec.input_limit) == (row, limit)
    assert spec.source


@pytest.mark.parametrize("name", ["gpt-5.6", "gpt-50", "claude-3", ""])
def test_unknown_models_are_configuration_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="--context-limit"):
        model_spec(name)


@pytest.mark.parametrize(
    ("model", "size", "detail", "tokens"),
    [
        # the examples of OpenAI's vision guide
        ("gpt-4o", (1024, 1024), "high", 765),
        ("gpt-4o", (2048, 4096), "high", 1105),
        ("gpt-4o", (4096, 8192), "low", 85),
        ("gpt-4o-mini", (1024, 1024), "high", 2833 + 4 * 5667),
        ("gpt-5-mini", (1024, 1024), "auto", 1659),  # 1024 patches x 1.62
        ("gpt-5-mini", (1800, 2400), "auto", 2353),  # 1452 patches x 1.62
    ],
)
def test_image_rules(model: str, size: tuple[int, int], detail: str, tokens: int) -> None:
    assert image_tokens(*size, detail=detail, rule=model_spec(model).image) == tokens
