"""Load the official OpenAPI spec validator from the shared reference folder beside the repo.

`spec-check/spec_validator.py` wraps openapi-core around OpenAI's published spec. It is not a
package, so it is imported by path. The parsed spec is pickled under pytest's cache directory:
the first load takes a few seconds, later ones a fraction of that.

The one allowance: the real API accepts an assistant message with `output_text` parts and no
`id`/`status`/`logprobs` (real recordings; the official backfill guide sends it), while the spec
only knows that content inside its full `OutputMessage` form. `as_spec_item` converts exactly that
shape to the full form before validation and leaves everything else as it is.
"""

from __future__ import annotations

import copy
import importlib.util
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
SPEC_PATH = SHARED_DIR / "openai-openapi" / "openapi.yaml"
VALIDATOR_PATH = SHARED_DIR / "reference" / "spec-check" / "spec_validator.py"
REAL_FIXTURES = SHARED_DIR / "fixtures" / "real"
SPEC_MISSING_REASON = f"official spec and validator not found beside the repository ({SHARED_DIR})"


class SpecValidator(Protocol):
    """The part of `spec_validator.SpecValidator` the tests use."""

    def request_problems_json(self, method: str, path: str, payload: Any = None) -> list[str]: ...


def spec_available() -> bool:
    """Whether the shared spec and its validator are present."""
    return SPEC_PATH.is_file() and VALIDATOR_PATH.is_file()


def load_spec_validator(cache_dir: Path) -> tuple[SpecValidator, dict[str, Any]]:
    """The validator and the (relaxed) spec document it validates against."""
    spec = importlib.util.spec_from_file_location("spec_validator", VALIDATOR_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {VALIDATOR_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("spec_validator", module)
    spec.loader.exec_module(module)
    cache_path = cache_dir / "openapi-relaxed.pickle"
    validator = module.SpecValidator.load(str(SPEC_PATH), str(cache_path))
    with cache_path.open("rb") as fh:
        document = pickle.load(fh)
    return cast(SpecValidator, validator), cast(dict[str, Any], document)


def needs_allowance(item: Mapping[str, Any]) -> bool:
    """True for the one shape the spec rejects and the API accepts (see the module docstring)."""
    content = item.get("content")
    return (
        item.get("type") == "message"
        and item.get("role") == "assistant"
        and "id" not in item
        and "status" not in item
        and isinstance(content, list)
        and bool(content)
        and all(_plain_output_text(part) for part in content)
    )


def _plain_output_text(part: Any) -> bool:
    return (
        isinstance(part, Mapping) and part.get("type") == "output_text" and "logprobs" not in part
    )


def as_spec_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as the spec's validator should see it: the allowance applied, nothing else."""
    converted = copy.deepcopy(dict(item))
    if needs_allowance(item):
        converted["id"] = "msg_allowance"
        converted["status"] = "completed"
        for part in converted["content"]:
            part["logprobs"] = []
    return converted


def as_spec_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A request body with the allowance applied to each of its items."""
    converted = dict(body)
    if isinstance(body.get("items"), list):
        converted["items"] = [as_spec_item(item) for item in body["items"]]
    return converted
