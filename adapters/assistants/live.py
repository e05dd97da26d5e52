"""Assistants threads read live from an Assistants-compatible server through the `openai` SDK.

There is no endpoint that lists threads, so thread ids come from the configuration: given
ids, a file of ids, and/or a SQL query on the application's own database (SQLAlchemy). For
each thread the reader fetches the thread, its messages oldest first (`order="asc"`, the SDK's
auto-pagination), and, when tool history is wanted, its runs and their run steps; optionally
file names through the Files API. The result is the canonical export document of
`adapters.assistants.export`, so a live read and a read of an export give the same conversation.

The SDK marks every `beta.threads` call deprecated (the hosted Assistants API shut down on
2026-08-26); this module silences that one warning around those calls only.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import openai
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adapters.assistants.azure import azure_threads_client, describe_endpoint, list_thread_ids
from adapters.assistants.entries import AssistantsFormatError
from adapters.assistants.export import canonical_document, conversation_from_document
from adapters.assistants.timeline import SOURCE_KIND
from adapters.azure import split_url
from adapters.base import SourceOpenError
from adapters.config import AssistantsLiveSourceConfig
from adapters.model import SourceFailure, SourceRecord

logger = logging.getLogger(__name__)

PAGE_SIZE = 100
"""The largest page the Assistants list endpoints allow."""
FILE_SEARCH_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"


THREAD_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
"""A thread id fit to become a file name and a URL path segment (OpenAI's look like
`thread_[A-Za-z0-9]+`): no path separator, no leading dot (no hidden file, no `..`)."""


def valid_thread_id(thread_id: str) -> bool:
    return THREAD_ID.fullmatch(thread_id) is not None


def invalid_thread_id_message(thread_id: str) -> str:
    return (
        f"thread id {thread_id!r} is not a valid thread id (letters, digits, `_`, `-` and "
        "`.`, not first, at most 200)"
    )


class ThreadFetchError(Exception):
    """One thread could not be fetched; the reader records it and goes on."""

    def __init__(self, thread_id: str, code: str, message: str) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.code = code
        self.message = message


@contextmanager
def _assistants_calls() -> Iterator[None]:
    # The SDK flags every Assistants method as deprecated; reading old threads is this
    # module's purpose, so that warning (and only it) is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The Assistants API is deprecated", category=DeprecationWarning
        )
        yield


class AssistantsLiveSource:
    """Threads from an Assistants-compatible server, in the order their ids are given."""

    def __init__(
        self, config: AssistantsLiveSourceConfig, *, client: openai.OpenAI | None = None
    ) -> None:
        self.config = config
        self._client = client
        self._filenames: dict[str, dict[str, Any] | None] = {}

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client; built on first use from the base URL and the API key variable."""
        if self._client is None and self.config.azure_endpoint is not None:
            self._client = azure_threads_client(
                self.config.azure_endpoint, api_version=self.config.api_version
            )
        if self._client is None:
            api_key = os.environ.get(self.config.api_key_env)
            if not api_key:
                raise SourceOpenError(
                    f"environment variable {self.config.api_key_env} is not set; "
                    "it must hold the Assistants server's API key"
                )
            base_url, query = split_url(self.config.base_url or "")
            self._client = openai.OpenAI(
                api_key=api_key, base_url=base_url or None, default_query=query or None
            )
        return self._client

    def describe(self) -> str:
        """A one-line, secret-free description of the server and where the ids come from."""
        origins = []
        if self.config.thread_ids:
            origins.append(f"{len(self.config.thread_ids)} given ids")
        if self.config.thread_ids_file:
            origins.append(f"ids from {self.config.thread_ids_file}")
        if self.config.thread_ids_query:
            origins.append("ids from a SQL query")
        if self.config.all_threads:
            origins.append("every listed thread")
        server = self._server()
        return f"Assistants threads at {server} ({', '.join(origins) or 'no ids'})"

    def location(self, thread_id: str) -> str:
        """Where one thread comes from, for reports."""
        return f"{self._server()} thread {thread_id}"

    def _credentials(self) -> str:
        if self.config.azure_endpoint is not None:
            return "AZURE_OPENAI_API_KEY, else Microsoft Entra ID"
        return f"the API key from {self.config.api_key_env}"

    def _server(self) -> str:
        if self.config.azure_endpoint is not None:
            return describe_endpoint(self.config.azure_endpoint)
        return self.config.base_url or os.environ.get("OPENAI_BASE_URL") or "api.openai.com"

    def thread_ids(self) -> list[str]:
        """Every configured thread id, once, in order: given ids, the file, then the query."""
        ids: dict[str, None] = dict.fromkeys(self.config.thread_ids)
        if self.config.all_threads:
            with _assistants_calls():
                ids.update(dict.fromkeys(list_thread_ids(self.client)))
        if self.config.thread_ids_file is not None:
            ids.update(dict.fromkeys(_ids_from_file(self.config)))
        if self.config.thread_ids_query is not None:
            ids.update(dict.fromkeys(_ids_from_query(self.config)))
        if not ids:
            raise SourceOpenError(
                "no thread ids: give ids, a file of ids or a SQL query (OpenAI's Assistants "
                "API cannot list threads), or all_threads where the service lists them"
            )
        return list(ids)

    def read(self) -> Iterator[SourceRecord]:
        """Yield one conversation (or failure) per thread id."""
        for thread_id in self.thread_ids():
            if not valid_thread_id(thread_id):
                yield self._failure(
                    thread_id, "invalid_thread_id", invalid_thread_id_message(thread_id)
                )
                continue
            try:
                document = self.fetch_document(thread_id)
            except ThreadFetchError as exc:
                yield self._failure(thread_id, exc.code, exc.message)
                continue
            try:
                yield conversation_from_document(document, location=self.location(thread_id))
            except AssistantsFormatError as exc:
                yield self._failure(thread_id, "invalid_thread", f"thread {thread_id}: {exc}")

    def fetch_document(self, thread_id: str) -> dict[str, Any]:
        """The thread in the canonical export layout.

        Raises:
            ThreadFetchError: The server refused or failed this thread.
            SourceOpenError: The server rejects the credentials; no thread can be read.
        """
        try:
            return self._fetch(thread_id)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise SourceOpenError(
                f"the Assistants server refused the credentials ({self._credentials()}): "
                f"HTTP {exc.status_code}"
            ) from exc
        except openai.NotFoundError as exc:
            raise ThreadFetchError(
                thread_id, "thread_not_found", f"thread {thread_id}: not found on the server"
            ) from exc
        except openai.APIStatusError as exc:
            raise ThreadFetchError(
                thread_id,
                "thread_fetch_failed",
                f"thread {thread_id}: HTTP {exc.status_code}: {_error_message(exc)}",
            ) from exc
        except openai.APIConnectionError as exc:
            raise ThreadFetchError(
                thread_id, "thread_fetch_failed", f"thread {thread_id}: {exc}"
            ) from exc

    def _fetch(self, thread_id: str) -> dict[str, Any]:
        threads = self.client.beta.threads
        with _assistants_calls():
            thread = threads.retrieve(thread_id).to_dict(mode="json", warnings=False)
            messages = [
                m.to_dict(mode="json", warnings=False)
                for m in threads.messages.list(thread_id, order="asc", limit=PAGE_SIZE)
            ]
            runs: list[dict[str, Any]] = []
            steps: list[dict[str, Any]] = []
            if self.config.include_run_steps:
                runs = [
                    r.to_dict(mode="json", warnings=False)
                    for r in threads.runs.list(thread_id, order="asc", limit=PAGE_SIZE)
                ]
                for run in runs:
                    steps += [
                        s.to_dict(mode="json", warnings=False)
                        for s in threads.runs.steps.list(
                            str(run["id"]),
                            thread_id=thread_id,
                            order="asc",
                            limit=PAGE_SIZE,
                            include=[FILE_SEARCH_CONTENT],
                        )
                    ]
        files = self._files(messages) if self.config.resolve_filenames else None
        return canonical_document(
            thread=thread, messages=messages, runs=runs, run_steps=steps, files=files
        )

    def _files(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """File objects for the files that messages cite or attach (looked up once per job)."""
        found: list[dict[str, Any]] = []
        for file_id in _cited_file_ids(messages):
            if file_id not in self._filenames:
                try:
                    retrieved = self.client.files.retrieve(file_id)
                    self._filenames[file_id] = retrieved.to_dict(mode="json", warnings=False)
                except openai.NotFoundError:
                    logger.info("file %s is gone; its citations keep no file name", file_id)
                    self._filenames[file_id] = None
            file = self._filenames[file_id]
            if file is not None:
                found.append(file)
        return found

    def _failure(self, thread_id: str, code: str, message: str) -> SourceFailure:
        logger.warning("%s", message)
        return SourceFailure(
            source_kind=SOURCE_KIND,
            location=self.location(thread_id),
            code=code,
            message=message,
            conversation_id=thread_id,
        )


def _cited_file_ids(messages: list[dict[str, Any]]) -> list[str]:
    ids: dict[str, None] = {}
    for message in messages:
        for part in message.get("content") or []:
            text_value = part.get("text") if isinstance(part, dict) else None
            for annotation in (text_value or {}).get("annotations") or []:
                target = annotation.get(annotation.get("type")) or {}
                if target.get("file_id"):
                    ids[str(target["file_id"])] = None
        for attachment in message.get("attachments") or []:
            if attachment.get("file_id"):
                ids[str(attachment["file_id"])] = None
        for file_id in message.get("file_ids") or []:
            ids[str(file_id)] = None
    return list(ids)


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _ids_from_file(config: AssistantsLiveSourceConfig) -> Iterator[str]:
    assert config.thread_ids_file is not None
    try:
        with config.thread_ids_file.open(encoding="utf-8") as file:
            for line in file:
                value = line.split("#", 1)[0].strip()
                if value:
                    yield value
    except OSError as exc:
        raise SourceOpenError(
            f"cannot read thread ids from {config.thread_ids_file}: {exc.strerror or exc}"
        ) from exc


def _ids_from_query(config: AssistantsLiveSourceConfig) -> Iterator[str]:
    url = config.thread_ids_url
    if config.thread_ids_url_env:
        url = os.environ.get(config.thread_ids_url_env)
        if not url:
            raise SourceOpenError(f"environment variable {config.thread_ids_url_env} is not set")
    if not url:
        raise SourceOpenError("thread_ids_query needs thread_ids_url or thread_ids_url_env")
    try:
        safe_url = make_url(url).render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise SourceOpenError("thread_ids_url is not a valid SQLAlchemy URL") from exc
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(
                text(str(config.thread_ids_query))
            )
            for row in result:
                if row[0] is not None:
                    yield str(row[0])
    except SQLAlchemyError as exc:
        raise SourceOpenError(
            f"thread id query failed on {safe_url}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()
