"""What every reader shares: the `Source` protocol and the errors a reader raises."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal, Protocol

from adapters.model import SourceRecord


class SourceOpenError(Exception):
    """The source cannot be opened at all (missing file, bad URL, unknown format)."""


class DecodeError(ValueError):
    """One record, row or message cannot be read; `code` names the kind of problem.

    Readers turn it into a `SourceFailure` for that conversation and go on with the next one.
    """

    def __init__(self, code: str, message: str, *, conversation_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.conversation_id = conversation_id

    def __str__(self) -> str:
        return self.message


class Source(Protocol):
    """A legacy store of conversations, read in a stable order."""

    def describe(self) -> str:
        """A one-line, secret-free description for logs and reports."""
        ...

    def read(self) -> Iterator[SourceRecord]:
        """Yield every conversation (or the failure to read one), in a stable order."""
        ...


SurrogatePolicy = Literal["fail", "replace"]
"""What a reader does with a lone UTF-16 surrogate (`"\\udc00"`) in a text: fail the
conversation (`lone_surrogate`), or put U+FFFD in its place (note `lone_surrogate_replaced`)."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(raw: bytes) -> bool:
    """Cheap test on JSON text: False means it cannot decode to a lone surrogate."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def lone_surrogate_paths(value: object, path: str = "", limit: int = 5) -> list[str]:
    """JSON paths (`messages[3].content`) of strings holding a lone surrogate, up to `limit`."""
    found: list[str] = []

    def walk(item: object, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(item, str):
            if not _encodable(item):
                found.append(where or "(the value)")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _encodable(key):
                    found.append(f"{where}.(a key)" if where else "(a key)")
                walk(child, f"{where}.{key}" if where else str(key))
        elif isinstance(item, list):
            for number, child in enumerate(item):
                walk(child, f"{where}[{number}]")

    walk(value, path)
    return found


def replace_lone_surrogates(value: object) -> Any:
    """`value` with every lone surrogate in its strings (and keys) replaced by U+FFFD."""
    if isinstance(value, str):
        return value if _encodable(value) else _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    return value


_SURROGATES = re.compile("[\ud800-\udfff]")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
