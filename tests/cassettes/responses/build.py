"""Build vcrpy cassettes from real recorded Responses API traffic, for `export-responses`.

Inputs (read-only): `tests/fixtures/real/openai-dotnet-conversations-responses/` (Azure
test-proxy records of the official .NET SDK's tests against api.openai.com).

Outputs (committed next to this file): `<name>.yaml`, vcrpy cassettes answering exactly the
requests the exporter sends for the recording's response ids, in its order: `GET
/responses/{id}` for each id, then `GET /responses/{leaf}/input_items` with `order=asc`,
`limit=100` and the exporter's `include[]` values.

Every body is a recorded object. Where the exporter asks for something the recording holds in
another form, the response is derived and says so in an `X-Cassette-Derived` header:

- a response recorded as the answer to `POST /responses` is served for `GET /responses/{id}`;
- the input items recorded newest first (the default order) are served reversed for
  `order=asc`;
- `MessageHistoryWorks` never listed its input items: they are the request's `input` as the
  API lists stored input (with `id` and `status`); their ids are made up (`msg_derived_N`).

Secret headers (authorization, organization, project, cookies) are dropped.
Run: `.venv/bin/python tests/cassettes/responses/build.py [OUT_DIR]`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RECORDINGS = ROOT / "tests" / "fixtures" / "real" / "openai-dotnet-conversations-responses"
BASE = "https://api.openai.com/v1"
sys.path.insert(0, str(ROOT))
from adapters.responses.chains import INCLUDE, PAGE_SIZE  # noqa: E402


def _assistants_build() -> Any:
    """The Assistants cassette builder, for its recording loader and secret header list."""
    spec = importlib.util.spec_from_file_location(
        "assistants_build", HERE.parent / "assistants" / "build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ASSISTANTS = _assistants_build()
DOTNET_RECORDINGS = {
    "function_call_works": "ResponsesTests_FunctionCallWorks.json",
    "message_history_works": "ResponsesTests_MessageHistoryWorks.json",
}


class Cassette:
    """GET interactions in the order the exporter sends them."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.responses: list[dict[str, Any]] = []

    def add(
        self, path: str, query: list[tuple[str, str]], body: Any, *, source: Any, derived: str
    ) -> None:
        uri = BASE + path + (f"?{urlencode(query)}" if query else "")
        self.requests.append(Request("GET", uri, b"", {"Accept": "application/json"}))
        payload = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
        headers = {
            name: list(values)
            for name, values in source.headers.items()
            if name.lower() not in ASSISTANTS.SECRET_HEADERS
            and name.lower() not in ("content-length", "transfer-encoding")
        }
        headers["Content-Length"] = [str(len(payload))]
        headers["X-Cassette-Derived"] = [derived]
        self.responses.append(
            {
                "status": {"code": 200, "message": "OK"},
                "headers": headers,
                "body": {"string": payload},
            }
        )

    def write(self, path: Path) -> None:
        text = serialize({"requests": self.requests, "responses": self.responses}, yamlserializer)
        path.write_text(text, encoding="utf-8")


def include_query() -> list[tuple[str, str]]:
    return [("include[]", value) for value in INCLUDE]


def build_one(name: str, out: Path) -> list[str]:
    """One cassette; returns the response ids it serves, in the recording's order."""
    recordings = ASSISTANTS.load_dotnet(RECORDINGS / DOTNET_RECORDINGS[name])
    created = [
        r
        for r in recordings
        if r.method == "POST" and r.path == "/v1/responses" and r.status == 200
    ]
    cassette = Cassette()
    for r in created:
        cassette.add(
            f"/responses/{r.body['id']}",
            include_query(),
            r.body,
            source=r,
            derived="recorded as the answer to POST /v1/responses; served for GET",
        )
    leaf = created[-1]
    listing_path = f"/v1/responses/{leaf.body['id']}/input_items"
    listed = [r for r in recordings if r.method == "GET" and r.path == listing_path]
    page_query = [("order", "asc"), ("limit", str(PAGE_SIZE)), *include_query()]
    if listed:
        body = dict(listed[-1].body)
        data = list(reversed(body["data"]))
        body.update(data=data, first_id=data[0]["id"], last_id=data[-1]["id"])
        cassette.add(
            f"/responses/{leaf.body['id']}/input_items",
            page_query,
            body,
            source=listed[-1],
            derived="recorded newest first (the default order); reversed for order=asc",
        )
    else:
        data = [
            {"id": f"msg_derived_{n}", "status": "completed", **item}
            for n, item in enumerate(leaf.request_body["input"])
        ]
        body = {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"],
            "last_id": data[-1]["id"],
            "has_more": False,
        }
        cassette.add(
            f"/responses/{leaf.body['id']}/input_items",
            page_query,
            body,
            source=leaf,
            derived="never listed in the recording: the request's input as stored input "
            "items; ids made up",
        )
    cassette.write(out / f"{name}.yaml")
    return [r.body["id"] for r in created]


def build(out: Path) -> dict[str, list[str]]:
    """Write every cassette into `out`; returns the response ids of each."""
    out.mkdir(parents=True, exist_ok=True)
    return {name: build_one(name, out) for name in DOTNET_RECORDINGS}


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE), indent=1))
