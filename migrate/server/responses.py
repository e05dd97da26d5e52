"""Stored responses for rehearsals: `GET /v1/responses/{id}` and `.../input_items`.

`migrate serve --responses DIR` serves every `*.json` file in DIR (read once at start). Each
file holds one response object as the API returns it (`id`, `output`, `previous_response_id`,
`instructions`, ...) plus `input_items`: the items `GET /responses/{id}/input_items` lists for
it, oldest first (for a response in a `previous_response_id` chain, the whole chain's context).

The endpoints behave as the real API does where the exporter depends on it:

- `input_items`: `order` (default `desc`), `limit` 1..100 (default 20), `after` (an item id of
  that list; unknown ids are a 400), `has_more`, `first_id`, `last_id`;
- what the API returns only on request is left out unless `include[]` names it: image URLs
  (`message.input_image.image_url`, `computer_call_output.output.image_url`), file search
  results, web search sources, code interpreter outputs, encrypted reasoning, logprobs;
  inline `file_data` is never returned (only the `filename`);
- an unknown response id is a 404 `Response with id '...' not found.`
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from migrate.server import validation
from migrate.server.errors import ApiError, invalid_request

logger = logging.getLogger(__name__)

RESPONSE_PATH = "/v1/responses/{response_id}"


class StoredResponses:
    """The responses of a directory, by id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._responses: dict[str, dict[str, Any]] = {}
        self._inputs: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(directory.glob("*.json")):
            self.add(json.loads(path.read_text(encoding="utf-8")), source=str(path))

    def add(self, document: dict[str, Any], *, source: str = "a stored response") -> None:
        """Store one response document (a response object plus its `input_items`)."""
        response = dict(document)
        inputs = response.pop("input_items", [])
        if not isinstance(response.get("id"), str) or not isinstance(inputs, list):
            raise ValueError(f"{source}: expected a response object with an id and input_items")
        self._responses[response["id"]] = response
        self._inputs[response["id"]] = inputs

    def __len__(self) -> int:
        return len(self._responses)

    def response(self, response_id: str, include: list[str]) -> dict[str, Any]:
        """The response object as `GET /v1/responses/{id}` returns it."""
        found = self._responses.get(response_id)
        if found is None:
            raise response_not_found(response_id)
        served = copy.deepcopy(found)
        served["output"] = [_shown(item, include) for item in served.get("output") or []]
        return served

    def input_items(
        self, response_id: str, *, order: str, limit: int, after: str | None, include: list[str]
    ) -> dict[str, Any]:
        """One page of the response's input items."""
        if response_id not in self._inputs:
            raise response_not_found(response_id)
        items = self._inputs[response_id]
        if order == "desc":
            items = items[::-1]
        start = 0
        if after is not None:
            index = next((i for i, item in enumerate(items) if item.get("id") == after), None)
            if index is None:
                raise invalid_request(f"Item with id '{after}' not found.", param="after")
            start = index + 1
        page = [_shown(item, include) for item in items[start : start + limit]]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": start + limit < len(items),
        }


def response_not_found(response_id: str) -> ApiError:
    """The 404 the real API gives for an unknown, expired or deleted response."""
    return ApiError(404, f"Response with id '{response_id}' not found.")


def _shown(item: dict[str, Any], include: list[str]) -> dict[str, Any]:
    """`item` less what the API returns only when `include` asks for it."""
    item = copy.deepcopy(item)
    kind = item.get("type", "message")
    if kind == "message":
        for part in item.get("content") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "input_image" and "message.input_image.image_url" not in include:
                part["image_url"] = None
            if part.get("type") == "input_file":
                part.pop("file_data", None)
            if part.get("type") == "output_text" and "message.output_text.logprobs" not in include:
                part.pop("logprobs", None)
    elif kind == "file_search_call" and "file_search_call.results" not in include:
        item["results"] = None
    elif kind == "web_search_call" and "web_search_call.action.sources" not in include:
        if isinstance(item.get("action"), dict):
            item["action"].pop("sources", None)
    elif kind == "code_interpreter_call" and "code_interpreter_call.outputs" not in include:
        item["outputs"] = None
    elif kind == "reasoning" and "reasoning.encrypted_content" not in include:
        item.pop("encrypted_content", None)
    elif kind == "computer_call_output" and "computer_call_output.output.image_url" not in include:
        output = item.get("output")
        if isinstance(output, dict):
            output["image_url"] = None
    return item


def _json(payload: object) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


def response_routes(stored: StoredResponses) -> list[Route]:
    """The two read endpoints over `stored`."""

    async def retrieve(request: Request) -> Response:
        include = validation.parse_include(request.query_params.getlist("include[]"))
        return _json(stored.response(request.path_params["response_id"], include))

    async def input_items(request: Request) -> Response:
        query = request.query_params
        include = validation.parse_include(query.getlist("include[]"))
        page = stored.input_items(
            request.path_params["response_id"],
            order=validation.parse_order(query.get("order")),
            limit=validation.parse_limit(query.get("limit")),
            after=query.get("after") or None,
            include=include,
        )
        return _json(page)

    return [
        Route(RESPONSE_PATH, retrieve, methods=["GET"]),
        Route(f"{RESPONSE_PATH}/input_items", input_items, methods=["GET"]),
    ]
