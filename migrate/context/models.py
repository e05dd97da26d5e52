"""The models a migrated conversation may be continued with: input limit and counting rules.

This is the one table of model limits. A name matches an entry when it equals the entry's
name or extends it with `-...` (a dated snapshot or a size: `gpt-4o-2024-08-06`,
`gpt-5-mini`); the longest match wins, so `gpt-4o-mini` has its own row. Each limit carries
where it comes from.

Counting rules (measured on the real recorded Responses calls in `tests/fixtures/real/`,
see `migrate.context.count`): every message costs its text tokens plus 4, and the whole
input costs 3 more on the gpt-4o and gpt-4.1 families and 2 more on the gpt-5 family.
gpt-4.1 has no recording; it is counted like gpt-4o (same chat format).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migrate.errors import ConfigError

NEAR_LIMIT_SHARE = 0.8
"""A conversation at or above this share of the limit gets `context_near_limit`."""


@dataclass(frozen=True)
class ImageRule:
    """How the model charges an image (OpenAI's vision guide, "Calculating costs")."""

    kind: Literal["tiles", "patches"]
    base: int = 0
    """tiles: tokens for every image (all a `detail: low` image costs)."""
    per_tile: int = 0
    """tiles: tokens per 512 px tile after scaling to fit 2048 px and a 768 px short side."""
    multiplier: float = 1.0
    """patches: tokens per 32 px patch (at most 1536 patches)."""


@dataclass(frozen=True)
class ModelSpec:
    """One row of the table."""

    name: str
    input_limit: int
    """The most input tokens the model accepts in one request."""
    source: str
    reply_overhead: int
    """Tokens the API adds once per request (the start of the model's reply)."""
    image: ImageRule
    per_message: int = 4
    encoding: str = "o200k_base"


_GPT5_SOURCE = (
    "API error 'Input tokens exceed the configured limit of 272,000 tokens' (400k context "
    "minus 128k reserved output), OpenAI model page"
)
_GPT5_LONG_SOURCE = "OpenAI model page: about 1.05M tokens of context"
_GPT41_SOURCE = "OpenAI model page: 1,047,576 tokens of context"
_GPT4O_SOURCE = "OpenAI model page: 128,000 tokens of context"

_TILES_4O = ImageRule("tiles", base=85, per_tile=170)
_TILES_4O_MINI = ImageRule("tiles", base=2833, per_tile=5667)
_TILES_5 = ImageRule("tiles", base=70, per_tile=140)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("gpt-5", 272_000, _GPT5_SOURCE, 2, _TILES_5),
        ModelSpec("gpt-5-mini", 272_000, _GPT5_SOURCE, 2, ImageRule("patches", multiplier=1.62)),
        ModelSpec("gpt-5-nano", 272_000, _GPT5_SOURCE, 2, ImageRule("patches", multiplier=2.46)),
        ModelSpec("gpt-5.1", 272_000, _GPT5_SOURCE, 2, _TILES_5),
        ModelSpec("gpt-5.2", 272_000, _GPT5_SOURCE, 2, _TILES_5),
        ModelSpec("gpt-5.4", 1_050_000, _GPT5_LONG_SOURCE, 2, _TILES_5),
        ModelSpec("gpt-5.5", 1_050_000, _GPT5_LONG_SOURCE, 2, _TILES_5),
        ModelSpec("gpt-4.1", 1_047_576, _GPT41_SOURCE, 3, _TILES_4O),
        ModelSpec("gpt-4.1-mini", 1_047_576, _GPT41_SOURCE, 3, ImageRule("patches", 0, 0, 1.62)),
        ModelSpec("gpt-4.1-nano", 1_047_576, _GPT41_SOURCE, 3, ImageRule("patches", 0, 0, 2.46)),
        ModelSpec("gpt-4o", 128_000, _GPT4O_SOURCE, 3, _TILES_4O),
        ModelSpec("gpt-4o-mini", 128_000, _GPT4O_SOURCE, 3, _TILES_4O_MINI),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The table row for `name` (raises `ConfigError` for a model it does not know)."""
    matches = [spec for key, spec in MODELS.items() if name == key or name.startswith(key + "-")]
    if not matches:
        known = ", ".join(sorted(MODELS))
        raise ConfigError(
            f"unknown model {name!r} for counting tokens; known: {known}",
            hint="pick the nearest known model with --model and give its limit with "
            "--context-limit N",
        )
    return max(matches, key=lambda spec: len(spec.name))


def input_limit(model: str, context_limit: int | None) -> int:
    """`context_limit` when given, else the model's input limit from the table."""
    return context_limit if context_limit is not None else model_spec(model).input_limit
