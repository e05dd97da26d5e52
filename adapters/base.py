"""What every reader shares: the `Source` protocol and the errors a reader raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
