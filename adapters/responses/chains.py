"""Export stored `previous_response_id` chains into Responses history files, resumably.

The Responses API cannot list responses, so the ids come from the app (a file, one per line).
`export_chains`:

1. retrieves every listed response (`GET /responses/{id}`, through the `openai` SDK); a 404
   (expired after the 30-day retention, or deleted) is a counted failure for that id. Each
   retrieved response is cached in `OUT/.responses/<id>.json`, so a second run asks only for
   the rest;
2. finds the leaves: listed responses that no other listed response names as its
   `previous_response_id`; each leaf's chain is followed back through `previous_response_id`
   (ancestors that were not listed are retrieved too) to name its first response;
3. for each leaf, reads `GET /responses/{leaf}/input_items?order=asc&limit=100` through every
   page (`after`), with the `include` values that bring back image URLs, search results and
   sources, code interpreter outputs and encrypted reasoning, and appends the leaf's own
   `output` (which `input_items` does not list);
4. writes one history per leaf, `OUT/<leaf_id>.json` (`adapters.responses.records` reads it):
   `id` (the leaf), `first_response_id`, `leaf_response_id`, `response_ids` (first to leaf),
   the leaf's `instructions` (not items, and not carried along a chain), `model`,
   `created_at` of the first response, the leaf's `metadata`, and `items`. Each file is
   written to a temporary name and renamed, so a file that exists is complete and is skipped.

Two leaves that share earlier responses (an edited or retried turn) each get the whole shared
prefix: one conversation per leaf. The summary lists which leaves share responses.
What the API cannot return (inline `file_data`, images sent inline) is found when the
history is read (`file_data_not_returned`, `image_not_returned`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

import openai
from pydantic import BaseModel, Field

from adapters.assistants.dump import _write_atomically
from adapters.base import SourceOpenError
from adapters.model import SourceFailure
from adapters.responses.records import SOURCE_KIND

logger = logging.getLogger(__name__)

PAGE_SIZE: Final = 100
"""The largest page `input_items` allows."""
INCLUDE: Final[list[Any]] = [
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
]
"""Every `include` value that brings back content (all but logprobs, which are not migrated)."""
CACHE_DIR: Final = ".responses"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class ChainProgress(BaseModel):
    """One step done: a response retrieved, or a leaf's history written."""

    stage: Literal["retrieve", "export"]
    response_id: str
    status: Literal["retrieved", "cached", "written", "skipped", "failed"]
    done: int
    total: int


class ChainExportSummary(BaseModel):
    """What `export_chains` did.

    `ids = retrieved + failed` for the listed ids; `leaves = written + skipped + leaf_failures`.
    """

    out_dir: str
    ids: int = 0
    retrieved: int = 0
    """Listed responses read from the server or from the cache of an earlier run."""
    failed: int = 0
    """Listed ids that could not be retrieved (404: expired or deleted)."""
    leaves: int = 0
    written: int = 0
    skipped: int = 0
    """Leaves whose history file already existed (an earlier, interrupted or finished export)."""
    leaf_failures: int = 0
    items: int = 0
    """Items written in this run's histories."""
    input_item_pages: int = 0
    shared: dict[str, list[str]] = Field(default_factory=dict)
    """Leaf -> the other leaves whose chains share earlier responses with it."""
    failures: list[SourceFailure] = Field(default_factory=list)


ProgressCallback = Callable[[ChainProgress], None]


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_response_ids(path: Path) -> list[str]:
    """Every id in `path`, once, in order (blank lines and `#` comments ignored)."""
    try:
        with path.open(encoding="utf-8") as file:
            lines = [line.split("#", 1)[0].strip() for line in file]
    except OSError as exc:
        raise SourceOpenError(
            f"cannot read response ids from {path}: {exc.strerror or exc}"
        ) from exc
    ids = list(dict.fromkeys(line for line in lines if line))
    if not ids:
        raise SourceOpenError(f"{path} holds no response ids")
    return ids


def history_file(out_dir: Path, leaf_id: str) -> Path:
    """Where the history of the chain ending at `leaf_id` lives."""
    return out_dir / f"{leaf_id}.json"


def export_chains(
    client: openai.OpenAI,
    response_ids: list[str],
    out_dir: Path,
    progress: ProgressCallback | None = None,
    *,
    server: str = "api.openai.com",
) -> ChainExportSummary:
    """Write one history file per leaf of the listed responses into `out_dir`.

    Raises:
        SourceOpenError: The server refuses the credentials.
    """
    exporter = _Exporter(client, out_dir, server, progress)
    try:
        return exporter.run(response_ids)
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise SourceOpenError(
            f"the Responses server refused the API key: HTTP {exc.status_code}"
        ) from exc


class _Exporter:
    def __init__(
        self,
        client: openai.OpenAI,
        out_dir: Path,
        server: str,
        progress: ProgressCallback | None,
    ) -> None:
        self.client = client
        self.out_dir = out_dir
        self.cache = out_dir / CACHE_DIR
        self.server = server
        self.progress = progress
        self.summary = ChainExportSummary(out_dir=str(out_dir))
        self.responses: dict[str, dict[str, Any]] = {}

    def run(self, response_ids: list[str]) -> ChainExportSummary:
        summary = self.summary
        summary.ids = len(response_ids)
        self.cache.mkdir(parents=True, exist_ok=True)
        listed: list[str] = []
        for done, response_id in enumerate(response_ids, start=1):
            try:
                _, cached = self.response(response_id)
                listed.append(response_id)
                summary.retrieved += 1
                status: Literal["retrieved", "cached", "failed"] = (
                    "cached" if cached else "retrieved"
                )
            except _Failed as exc:
                self.fail(response_id, exc)
                summary.failed += 1
                status = "failed"
            self.report("retrieve", response_id, status, done, len(response_ids))
        named = {self.responses[r].get("previous_response_id") for r in listed}
        leaves = [r for r in listed if r not in named]
        summary.leaves = len(leaves)
        chains: dict[str, list[str]] = {}
        for done, leaf in enumerate(leaves, start=1):
            status_out: Literal["written", "skipped", "failed"]
            try:
                status_out = self.export(leaf, chains)
            except _Failed as exc:
                self.fail(leaf, exc)
                summary.leaf_failures += 1
                status_out = "failed"
            self.report("export", leaf, status_out, done, len(leaves))
        summary.shared = _shared(chains)
        return summary

    # --- one response, one leaf -------------------------------------------------------------

    def response(self, response_id: str) -> tuple[dict[str, Any], bool]:
        """The response object (from the cache when an earlier run retrieved it)."""
        if response_id in self.responses:
            return self.responses[response_id], True
        if not _SAFE_ID.match(response_id):
            raise _Failed("invalid_response_id", f"{response_id!r} is not a valid response id")
        path = self.cache / f"{response_id}.json"
        found = _read_json(path)
        cached = isinstance(found, dict) and found.get("id") == response_id
        if not cached:
            found = self.call(
                response_id,
                lambda: self.client.responses.retrieve(response_id, include=INCLUDE),
            )
            _write_atomically(path, found)
        assert isinstance(found, dict)
        self.responses[response_id] = found
        return found, cached

    def export(self, leaf: str, chains: dict[str, list[str]]) -> Literal["written", "skipped"]:
        chain = self.chain(leaf)
        chains[leaf] = chain
        path = history_file(self.out_dir, leaf)
        existing = _read_json(path)
        if isinstance(existing, dict) and existing.get("leaf_response_id") == leaf:
            self.summary.skipped += 1
            return "skipped"
        response = self.responses[leaf]
        items = [*self.input_items(leaf), *(response.get("output") or [])]
        first = self.responses.get(chain[0], response)
        document = {
            "id": leaf,
            "first_response_id": chain[0],
            "leaf_response_id": leaf,
            "response_ids": chain,
            "instructions": response.get("instructions"),
            "model": response.get("model"),
            "created_at": first.get("created_at"),
            "metadata": response.get("metadata") or {},
            "items": items,
        }
        _write_atomically(path, document)
        self.summary.written += 1
        self.summary.items += len(items)
        return "written"

    def chain(self, leaf: str) -> list[str]:
        """The chain's response ids, first to leaf, as far back as the server still has them."""
        chain = [leaf]
        previous = self.responses[leaf].get("previous_response_id")
        while isinstance(previous, str) and previous not in chain:
            try:
                self.response(previous)
            except _Failed as exc:
                logger.warning("chain of %s: %s; it starts at %s", leaf, exc.message, chain[-1])
                break
            chain.append(previous)
            previous = self.responses[previous].get("previous_response_id")
        return chain[::-1]

    def input_items(self, leaf: str) -> list[dict[str, Any]]:
        page = self.call(
            leaf,
            lambda: self.client.responses.input_items.list(
                leaf, order="asc", limit=PAGE_SIZE, include=INCLUDE
            ),
            convert=False,
        )
        items: list[dict[str, Any]] = []
        while True:
            self.summary.input_item_pages += 1
            items += [item.to_dict(mode="json", warnings=False) for item in page.data]
            if not page.has_next_page():
                break
            current = page
            page = self.call(leaf, current.get_next_page, convert=False)
        return items

    # --- plumbing ----------------------------------------------------------------------------

    def call(self, response_id: str, function: Callable[[], Any], *, convert: bool = True) -> Any:
        try:
            result = function()
        except openai.NotFoundError as exc:
            raise _Failed(
                "response_not_found",
                f"response {response_id}: not found (expired after the 30-day retention, or "
                "deleted)",
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError):
            raise
        except openai.APIStatusError as exc:
            raise _Failed(
                "response_fetch_failed", f"response {response_id}: HTTP {exc.status_code}"
            ) from exc
        except openai.APIConnectionError as exc:
            raise _Failed("response_fetch_failed", f"response {response_id}: {exc}") from exc
        return result.to_dict(mode="json", warnings=False) if convert else result

    def fail(self, response_id: str, exc: _Failed) -> None:
        logger.warning("%s", exc.message)
        self.summary.failures.append(
            SourceFailure(
                source_kind=SOURCE_KIND,
                location=f"{self.server} response {response_id}",
                code=exc.code,
                message=exc.message,
                conversation_id=response_id,
            )
        )

    def report(self, stage: Any, response_id: str, status: Any, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(
                ChainProgress(
                    stage=stage, response_id=response_id, status=status, done=done, total=total
                )
            )


def _shared(chains: dict[str, list[str]]) -> dict[str, list[str]]:
    holders: dict[str, list[str]] = {}
    for leaf, chain in chains.items():
        for response_id in chain:
            holders.setdefault(response_id, []).append(leaf)
    shared: dict[str, list[str]] = {}
    for leaf, chain in chains.items():
        others = {other for r in chain for other in holders[r] if other != leaf}
        if others:
            shared[leaf] = sorted(others)
    return shared


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        with path.open("rb") as file:
            return json.load(file)
    except (OSError, ValueError):
        logger.warning("%s is unreadable; fetching it again", path)
        return None
