"""Build vcrpy cassettes and export files from real recorded Assistants API traffic.

Inputs (read-only): `tests/fixtures/real/openai-dotnet-assistants/*.json` (Azure test-proxy
records of the official .NET SDK's tests against api.openai.com) and
`tests/fixtures/real/ruby-openai-assistants-vcr/*.yml` (VCR cassettes of ruby-openai's tests).

Outputs (committed next to this file):

- `<name>.yaml`: vcrpy cassettes answering exactly the requests the live reader sends
  (`GET /threads/{id}`, messages with `order=asc&limit=100`, runs, run steps), one per recording.
- `exports/`: export files in the shapes people saved (the API's list envelopes as recorded,
  bare arrays of messages, the canonical layout), for the export reader.

Every response body is a recorded object. Where the readers ask for something the recording
holds in another form, the response is derived and says so in an `X-Cassette-Derived` header:

- a list recorded newest first (`order=desc`, the default) is served reversed for `order=asc`;
- the last recorded state of each thread and run is served (threads are modified in the tests);
- a list that was never fetched is served empty only where the recording shows the thread was
  created empty and never written to, or the thread never had a run;
- `FunctionToolsWork` recorded no run-step list: its two steps are rebuilt from the run's
  `required_action` (the function call), the `submit_tool_outputs` request (its output), and
  the run's final message (the `message_creation` step); their ids are made up (`step_derived_...`);
- `threads_modify.yml`'s real 400 error body answers a `GET` of that thread.

Secret headers (authorization, openai-organization, openai-project, cookies) are dropped.
Run: `.venv/bin/python tests/cassettes/assistants/build.py [OUT_DIR]`.
"""

from __future__ import annotations

import json
import sys
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml
from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

HERE = Path(__file__).resolve().parent
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "real"
DOTNET = FIXTURES / "openai-dotnet-assistants"
RUBY = FIXTURES / "ruby-openai-assistants-vcr"
BASE = "https://api.openai.com/v1"
PAGE = {"limit": "100", "order": "asc"}
FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
SECRET_HEADERS = {
    "authorization",
    "openai-organization",
    "openai-project",
    "cookie",
    "set-cookie",
}
DOTNET_RECORDINGS = {
    "function_tools": "FunctionToolsWork.json",
    "image_detail": "ThreadWithImageDetailWorks.json",
    "messages_with_roles": "MessagesWithRoles.json",
    "basic_message_operations": "BasicMessageOperationsWork.json",
    "basic_thread_operations": "BasicThreadOperationsWork.json",
}


class Recording:
    """One recorded exchange, whatever the recorder's format."""

    def __init__(
        self,
        method: str,
        uri: str,
        request_body: Any,
        status: int,
        headers: dict[str, list[str]],
        body: Any,
    ) -> None:
        self.method = method.upper()
        self.uri = uri
        self.request_body = request_body
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def query(self) -> str:
        return urlsplit(self.uri).query


def load_dotnet(path: Path) -> list[Recording]:
    """Entries of an Azure test-proxy session record."""
    entries = json.loads(path.read_text(encoding="utf-8"))["Entries"]
    return [
        Recording(
            e["RequestMethod"],
            e["RequestUri"],
            e.get("RequestBody"),
            int(e["StatusCode"]),
            {k: [str(v)] for k, v in (e.get("ResponseHeaders") or {}).items()},
            e.get("ResponseBody"),
        )
        for e in entries
    ]


def load_ruby(path: Path) -> list[Recording]:
    """Interactions of a VCR (Ruby) cassette."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for i in data["http_interactions"]:
        request, response = i["request"], i["response"]
        body = response["body"]["string"]
        request_body = request["body"]["string"]
        out.append(
            Recording(
                request["method"],
                request["uri"],
                json.loads(request_body) if request_body else None,
                int(response["status"]["code"]),
                {k: [str(v) for v in vs] for k, vs in response["headers"].items()},
                json.loads(body) if body else None,
            )
        )
    return out


# --- cassette building ---------------------------------------------------------------------


class Cassette:
    """Interactions in the order the live reader sends them."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.responses: list[dict[str, Any]] = []

    def add(
        self,
        path: str,
        query: dict[str, str],
        body: Any,
        *,
        source: Recording,
        derived: str | None = None,
        status: int | None = None,
    ) -> None:
        uri = BASE + path + (f"?{urlencode(query)}" if query else "")
        self.requests.append(
            Request("GET", uri, b"", {"Accept": "application/json", "OpenAI-Beta": "assistants=v2"})
        )
        payload = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
        headers = {
            name: list(values)
            for name, values in source.headers.items()
            if name.lower() not in SECRET_HEADERS
            and name.lower() not in ("content-length", "transfer-encoding")
        }
        headers["Content-Length"] = [str(len(payload))]
        if derived:
            headers["X-Cassette-Derived"] = [derived]
        code = status or source.status
        self.responses.append(
            {
                "status": {"code": code, "message": "OK" if code == 200 else "Bad Request"},
                "headers": headers,
                "body": {"string": payload},
            }
        )

    def write(self, path: Path) -> None:
        text = serialize({"requests": self.requests, "responses": self.responses}, yamlserializer)
        path.write_text(text, encoding="utf-8")


def latest(recordings: list[Recording], kind: str, object_id: str) -> Recording | None:
    """The last successful response holding object `object_id` of type `kind`."""
    found = None
    for r in recordings:
        if (
            r.status == 200
            and isinstance(r.body, dict)
            and r.body.get("object") == kind
            and r.body.get("id") == object_id
        ):
            found = r
    return found


def message_lists(recordings: list[Recording], thread_id: str) -> list[Recording]:
    path = f"/v1/threads/{thread_id}/messages"
    return [r for r in recordings if r.method == "GET" and r.path == path and r.status == 200]


def ascending(recording: Recording) -> tuple[dict[str, Any], str | None]:
    """A recorded message list as `order=asc` would return it, and how it was derived."""
    body = dict(recording.body)
    if "order=asc" in recording.query:
        return body, None
    data = list(reversed(body["data"]))
    body.update(data=data, first_id=data[0]["id"] if data else None)
    body["last_id"] = data[-1]["id"] if data else None
    return body, "recorded newest first (order=desc); reversed for order=asc"


def empty_list() -> dict[str, Any]:
    return {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def epoch(recording: Recording) -> int:
    date = next(v[0] for k, v in recording.headers.items() if k.lower() == "date")
    return int(parsedate_to_datetime(date).timestamp())


def function_tool_steps(
    recordings: list[Recording], run: dict[str, Any], message: dict[str, Any]
) -> list[dict[str, Any]]:
    """The run's steps, rebuilt from its `required_action`, the tool outputs and its message."""
    run_path = f"/v1/threads/{run['thread_id']}/runs/{run['id']}"
    polls = [r for r in recordings if r.path == run_path and isinstance(r.body, dict)]
    asked = next(r for r in polls if r.body.get("required_action"))
    submit = next(r for r in recordings if r.path == run_path + "/submit_tool_outputs")
    outputs = {o["tool_call_id"]: o["output"] for o in submit.request_body["tool_outputs"]}
    calls = asked.body["required_action"]["submit_tool_outputs"]["tool_calls"]
    common = {
        "object": "thread.run.step",
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "status": "completed",
        "cancelled_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "metadata": {},
        "usage": None,
    }
    tool_step = {
        "id": "step_derived_tool_calls",
        **common,
        "type": "tool_calls",
        "created_at": asked.body["started_at"],
        "completed_at": epoch(submit),
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {**call["function"], "output": outputs[call["id"]]},
                }
                for call in calls
            ],
        },
    }
    message_step = {
        "id": "step_derived_message_creation",
        **common,
        "type": "message_creation",
        "created_at": message["created_at"],
        "completed_at": run["completed_at"],
        "step_details": {
            "type": "message_creation",
            "message_creation": {"message_id": message["id"]},
        },
    }
    return [tool_step, message_step]


def thread_ids_of(recordings: list[Recording]) -> list[str]:
    """Threads created in the recording and not deleted, in order of creation."""
    created = [
        r.body["id"]
        for r in recordings
        if r.status == 200 and isinstance(r.body, dict) and r.body.get("object") == "thread"
    ]
    created += [
        r.body["thread_id"]
        for r in recordings
        if isinstance(r.body, dict) and r.body.get("object") == "thread.run"
    ]
    deleted = {
        r.body["id"]
        for r in recordings
        if isinstance(r.body, dict) and r.body.get("object") == "thread.deleted"
    }
    return [t for t in dict.fromkeys(created) if t not in deleted]


def build_dotnet(name: str, out: Path) -> dict[str, Any]:
    """One cassette for a .NET recording; returns the canonical documents it serves."""
    recordings = load_dotnet(DOTNET / DOTNET_RECORDINGS[name])
    cassette = Cassette()
    documents: dict[str, Any] = {}
    for thread_id in thread_ids_of(recordings):
        lists = message_lists(recordings, thread_id)
        runs = [
            latest(recordings, "thread.run", run_id)
            for run_id in dict.fromkeys(
                r.body["id"]
                for r in recordings
                if isinstance(r.body, dict)
                and r.body.get("object") == "thread.run"
                and r.body.get("thread_id") == thread_id
            )
        ]
        thread_rec = latest(recordings, "thread", thread_id)
        if thread_rec is not None:
            thread = thread_rec.body
            cassette.add(f"/threads/{thread_id}", {}, thread, source=thread_rec)
        else:
            # Created by `POST /threads/runs`: no thread object in the recording.
            first = runs[0]
            assert first is not None
            thread = {
                "id": thread_id,
                "object": "thread",
                "created_at": first.body["created_at"],
                "metadata": {},
                "tool_resources": {},
            }
            cassette.add(
                f"/threads/{thread_id}",
                {},
                thread,
                source=first,
                derived="thread created by POST /threads/runs with no metadata; "
                "id and created_at from the run",
            )
        if lists:
            messages_body, how = ascending(lists[-1])
            cassette.add(
                f"/threads/{thread_id}/messages",
                PAGE,
                messages_body,
                source=lists[-1],
                derived=how,
            )
        else:
            messages_body = empty_list()
            cassette.add(
                f"/threads/{thread_id}/messages",
                PAGE,
                messages_body,
                source=thread_rec or recordings[0],
                derived="thread created with messages=[] and never written to",
            )
        run_bodies = [r.body for r in runs if r is not None]
        run_list = {
            **empty_list(),
            "data": run_bodies,
            "first_id": run_bodies[0]["id"] if run_bodies else None,
            "last_id": run_bodies[-1]["id"] if run_bodies else None,
        }
        cassette.add(
            f"/threads/{thread_id}/runs",
            PAGE,
            run_list,
            source=runs[-1] if runs and runs[-1] else (thread_rec or recordings[0]),
            derived="the last recorded state of each run of the thread"
            if run_bodies
            else "no run was ever created on this thread",
        )
        steps: list[dict[str, Any]] = []
        for run in run_bodies:
            produced = next(m for m in messages_body["data"] if m.get("run_id") == run["id"])
            run_steps = function_tool_steps(recordings, run, produced)
            steps += run_steps
            cassette.add(
                f"/threads/{thread_id}/runs/{run['id']}/steps",
                {**PAGE, "include[]": FILE_SEARCH_CONTENT},
                {
                    **empty_list(),
                    "data": run_steps,
                    "first_id": run_steps[0]["id"],
                    "last_id": run_steps[-1]["id"],
                },
                source=latest(recordings, "thread.run", run["id"]) or recordings[0],
                derived="steps rebuilt from required_action, submit_tool_outputs and the "
                "run's message; step ids made up",
            )
        documents[thread_id] = {
            "thread": thread,
            "messages": messages_body["data"],
            "runs": run_bodies,
            "run_steps": steps,
        }
    cassette.write(out / f"{name}.yaml")
    return documents


def build_ruby(out: Path) -> None:
    """Cassette of two real v1/v2 threads (no messages) and a real error body."""
    recordings = load_ruby(RUBY / "threads_modify.yml")
    cassette = Cassette()
    for r in recordings:
        thread_id = r.path.rsplit("/", 1)[-1]
        if r.status != 200:
            if thread_id == "thread_uJfx6VB7s6v33G7Mq9374bqN":
                cassette.add(
                    f"/threads/{thread_id}",
                    {},
                    r.body,
                    source=r,
                    derived="recorded as the answer to POST (modify); served for GET",
                )
            continue
        if thread_id not in ("thread_XaNJDdLqZ9LrOopr7AkBNlcu", "thread_i3Hs96sQAsLBfOTU1Rl6137V"):
            continue
        cassette.add(f"/threads/{thread_id}", {}, r.body, source=r)
        for what in ("messages", "runs"):
            cassette.add(
                f"/threads/{thread_id}/{what}",
                PAGE,
                empty_list(),
                source=r,
                derived=f"{what} of this thread were never recorded; served empty",
            )
    cassette.write(out / "ruby_threads.yaml")


def build_exports(out: Path, documents: dict[str, Any]) -> None:
    """Export files in the shapes people saved, from the recorded bodies."""
    exports = out / "exports"
    exports.mkdir(exist_ok=True)
    # The API's list envelope exactly as recorded (newest first), one file per thread.
    for name in ("MessagesWithRoles.json", "FunctionToolsWork.json"):
        recordings = load_dotnet(DOTNET / name)
        for thread_id in thread_ids_of(recordings):
            page = message_lists(recordings, thread_id)[-1]
            (exports / f"envelope_{thread_id}.json").write_text(
                json.dumps(page.body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
    # Bare arrays of single recorded messages: Assistants v1 (`file_ids`) and v2 shapes.
    for r in load_ruby(RUBY / "messages_retrieve.yml"):
        (exports / f"bare_{r.body['thread_id']}.json").write_text(
            json.dumps([r.body], ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    # The canonical layout, one thread per line.
    lines = [json.dumps(documents[t], ensure_ascii=False) for t in sorted(documents)]
    (exports / "canonical.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(out: Path) -> None:
    """Write every cassette and export file into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    documents: dict[str, Any] = {}
    for name in DOTNET_RECORDINGS:
        documents.update(build_dotnet(name, out))
    build_ruby(out)
    build_exports(out, documents)


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
