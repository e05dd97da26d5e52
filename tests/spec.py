"""Validate requests against the part of OpenAI's official OpenAPI spec the tests need.

`fixtures/openapi/openapi-subset.json` holds the Conversations and Responses paths of the spec
and every schema they reach, unmodified (`fixtures/build.py` extracts it; `SOURCE.md` beside it
names the commit and licence). The validator wraps openapi-core around a mechanically relaxed
copy: `oneOf` becomes `anyOf` and `discriminator` is dropped, because the spec's unions overlap
(a user message with a list of parts matches two branches) and strict validators reject the
spec's own examples.

The one allowance: the real API accepts an assistant message with `output_text` parts and no
`id`/`status`/`logprobs` (real recordings; the official backfill guide sends it), while the spec
only knows that content inside its full `OutputMessage` form. `as_spec_item` converts exactly that
shape to the full form before validation and leaves everything else as it is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from jsonschema.exceptions import ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPEC_PATH = FIXTURES / "openapi" / "openapi-subset.json"
REAL_FIXTURES = FIXTURES / "real"
SPEC_SERVER = "https://api.openai.com/v1"


def relax(node: Any) -> Any:
    """Drop every `discriminator` (none has a mapping) and turn `oneOf` into `anyOf`."""
    if isinstance(node, dict):
        return {
            ("anyOf" if key == "oneOf" else key): relax(value)
            for key, value in node.items()
            if not (key == "discriminator" and isinstance(value, dict) and "propertyName" in value)
        }
    if isinstance(node, list):
        return [relax(value) for value in node]
    return node


class _Request:
    """openapi-core's request protocol for a request given as method, URL, headers and body."""

    def __init__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None):
        parts = urlsplit(url)
        path = parts.path[3:] if parts.path.startswith("/v1") else parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        self.host_url = "https://api.openai.com"
        self.path = "/v1" + path
        self.method = method.lower()
        self.body = body or None
        self._headers = Headers(dict(headers))
        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, vs in query.items() for v in vs]),
            header=self._headers,
            cookie=ImmutableMultiDict(),
        )

    @property
    def content_type(self) -> str:
        return str(self._headers.get("Content-Type", "application/json"))


def _short(error: ValidationError) -> str:
    path = "/".join(map(str, error.absolute_path)) or "<body>"
    sized = error.validator in ("maxItems", "minItems", "maxLength", "minLength")
    if sized and hasattr(error.instance, "__len__"):
        got = len(error.instance)
        return f"{path}: {error.validator}={error.validator_value} violated (got {got})"
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{path}: {message}"


def _is_type_tag_error(error: ValidationError) -> bool:
    # the branch was rejected because its `type` tag ("message", "function_call") differs
    return list(error.relative_path) == ["type"] and error.validator in ("enum", "const", "anyOf")


def _is_json_type_error(error: ValidationError) -> bool:
    # the branch was rejected because the JSON type differs (string vs array, object vs null)
    return not list(error.relative_path) and error.validator == "type"


def _explain(error: ValidationError) -> list[str]:
    """The most specific messages of a nested `anyOf` failure: the branch that came closest."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [_short(error)]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    candidates = {
        branch: errors
        for branch, errors in branches.items()
        if not any(_is_json_type_error(e) for e in errors)
    } or branches
    instance = error.instance
    if isinstance(instance, dict) and "type" in instance:
        tagged = {
            branch: errors
            for branch, errors in candidates.items()
            if not any(_is_type_tag_error(e) for e in errors)
        }
        if not tagged:
            allowed = sorted(
                {
                    value
                    for errors in branches.values()
                    for e in errors
                    if list(e.relative_path) == ["type"] and e.validator == "enum"
                    for value in cast(list[str], e.validator_value)
                }
            )
            path = "/".join(map(str, error.absolute_path)) or "<body>"
            return [f"{path}/type: {instance['type']!r} is not allowed here; allowed: {allowed}"]
        candidates = tagged
    closest = min(candidates.values(), key=len)
    return [message for e in closest for message in _explain(e)]


def explain(exc: BaseException, limit: int = 8) -> list[str]:
    """Readable problems from one of openapi-core's validation errors."""
    cause = exc.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if not schema_errors:
        return [f"{type(exc).__name__}: {exc}" + (f" ({cause})" if cause else "")]
    problems: list[str] = []
    for error in schema_errors:
        for message in _explain(error):
            if message not in problems:
                problems.append(message)
    head = f"{type(exc).__name__}: {exc}" if len(str(exc)) < 120 else type(exc).__name__
    return [head, *problems[:limit]]


class SpecValidator:
    """Validates requests against the relaxed spec subset."""

    def __init__(self, document: dict[str, Any]) -> None:
        # spec_validator_cls=None: the official spec fails openapi-spec-validator (a schema
        # repeats a required field), and validating the spec itself is slow anyway
        config = Config(spec_validator_cls=None)  # type: ignore[arg-type]  # None: skip it
        self.api = OpenAPI.from_dict(document, config=config)

    def request_problems(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> list[str]:
        """[] when the request is valid, else readable problems."""
        try:
            self.api.validate_request(_Request(method, url, headers, body))
        except Exception as exc:  # openapi-core raises a family of *Error classes
            return explain(exc)
        return []

    def request_problems_json(self, method: str, path: str, payload: Any = None) -> list[str]:
        """`request_problems` for a JSON body sent to a path under /v1."""
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
        return self.request_problems(method, SPEC_SERVER + path, headers, body)


def load_spec_validator() -> tuple[SpecValidator, dict[str, Any]]:
    """The validator and the (relaxed) spec document it validates against."""
    document = relax(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
    return SpecValidator(document), document


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
