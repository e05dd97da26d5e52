"""The JSON/JSONL source: files or a directory of them, in any of the supported formats.

Formats: Chat Completions message arrays, OpenAI fine-tuning JSONL, ShareGPT, the ChatGPT data
export and (through `adapters.assistants.export`) Assistants API exports. With
`format="auto"` each file's format is detected from its first record. A directory is read
recursively in sorted path order (`.json`, `.jsonl`, `.ndjson`, `.jsonlines`); every other file
is listed, with its reason, in `skipped_files` (`adapters.json.listing`, which also reads a
ChatGPT export's `.zip` in place and skips its side files). Records without an id get one from
the file's path relative to the source and the line (`chats.jsonl:12`) or array index
(`export.json[3]`); such ids stay stable as long as the file is not edited.

Every record that cannot be read becomes a `SourceFailure` naming the file, the line or array
index (or byte offset, when a JSON array is malformed) and the conversation id when known;
reading goes on with the next record. In a directory, a file that cannot be read or whose
format cannot be told fails alone (one failure naming it) and the other files are read.

A source of one JSON Lines file of one conversation a line (Chat Completions, fine-tuning,
ShareGPT, Responses) can tell where each record it read starts (`mark`), and start a later read
there (`start_at`) once it has checked that every byte before it is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydantic import ValidationError

from adapters.base import DecodeError, SourceOpenError, replace_lone_surrogates
from adapters.config import JsonFormat, JsonSourceConfig
from adapters.json.chat_completions import read_chat_completions, readable_id
from adapters.json.chatgpt_export import read_chatgpt
from adapters.json.common import RecordContext
from adapters.json.detect import detect_file_format
from adapters.json.listing import SkippedFile, SourceFile, ZipMember, file_size, list_source
from adapters.json.sharegpt import read_sharegpt
from adapters.json.stream import (
    ByteMeter,
    Layout,
    LineMark,
    LineStart,
    RawFailure,
    RawRecord,
    iter_raw_records,
    peek_first_value,
    sniff_layout,
    verify_line_mark,
)
from adapters.json.threads import read_export
from adapters.model import (
    SourceConversation,
    SourceFailure,
    SourceNote,
    SourceRecord,
    UnreadConversation,
)
from adapters.responses.records import read_responses

logger = logging.getLogger(__name__)


MARKS_KEPT = 10_000
"""Marks of records read but not yet asked for (`JsonFilesSource.mark`) kept at most: the
oldest go first (a record that was read and never stored)."""
_ONE_PER_RECORD = ("chat_completions", "finetune", "sharegpt", "responses")

_FORMAT_HINT = (
    "pass the format explicitly (format = chat_completions, finetune, sharegpt, chatgpt, "
    "assistants or responses)"
)


class JsonFilesSource:
    """Conversations stored in JSON or JSONL files."""

    def __init__(self, config: JsonSourceConfig) -> None:
        self._config = config
        self._root = config.path
        if not self._root.exists():
            raise SourceOpenError(f"{self._root} does not exist")
        listing = list_source(self._root)
        self._files = listing.files
        self.skipped_files: list[SkippedFile] = listing.skipped
        """Files of the source that are not read, each with its reason."""
        if self._root.is_dir() and not self._files and config.format != "assistants":
            others = f" ({len(self.skipped_files)} other files)" if self.skipped_files else ""
            raise SourceOpenError(
                f"{self._root} holds no .json, .jsonl or .ndjson files (searched recursively)"
                + others
            )
        self._several = self._root.is_dir() or len(self._files) > 1
        """A directory or an archive: one file that cannot be read fails alone."""
        self.meter = ByteMeter()
        """Bytes read so far (of `size`): the progress of a read."""
        self.size = sum(file_size(path) for path in self._files)
        self._detected: dict[SourceFile, tuple[Layout, JsonFormat | None]] = {}
        if config.format == "auto":
            self._detect_first_file()
        self._marks: dict[str, LineMark] = {}
        self._start: LineStart | None = None

    def mark(self, location: str) -> str | None:
        """Where the record read at `location` starts, for `start_at` (None: this source
        cannot start a read there: only one JSON Lines file of one conversation a line can)."""
        found = self._marks.pop(location, None)
        return None if found is None else found.encode()

    def start_at(self, mark: str) -> bool:
        """Start the next read at `mark` (from `mark`), if every byte of the file before it is
        as it was when the mark was taken; False (the read starts at the beginning) if not."""
        decoded = LineMark.decode(mark)
        path = self._marked_file()
        if decoded is None or path is None:
            return False
        try:
            self._start = verify_line_mark(path, decoded)
        except OSError:
            self._start = None
        return self._start is not None

    def _marked_file(self) -> Path | None:
        """The one file a read can start inside of, if the source is one such file."""
        if self._config.format == "assistants" or len(self._files) != 1 or self._several:
            return None
        path = self._files[0]
        if not isinstance(path, Path):
            return None
        try:
            layout, found = self._layout_and_format(path)
        except OSError:
            return None
        self._detected[path] = (layout, found)
        return path if layout is Layout.JSONL and found in _ONE_PER_RECORD else None

    def _remember_mark(self, location: str, mark: LineMark) -> None:
        if len(self._marks) >= MARKS_KEPT:
            del self._marks[next(iter(self._marks))]
        self._marks[location] = mark

    def describe(self) -> str:
        """A one-line description for logs and reports."""
        kind = "directory" if self._root.is_dir() else "file"
        return f"JSON {kind} {self._root} (format {self._config.format})"

    def read(self, *, skip: Callable[[str], bool] | None = None) -> Iterator[SourceRecord]:
        """Yield every conversation, or the failure to read it, in file order.

        A Chat Completions or fine-tuning record whose id `skip` accepts (asked as the record
        is reached) comes out as an `UnreadConversation`: its JSON is parsed, its messages are
        not decoded. A record that would fail to read is never skipped. After `start_at`, the
        read starts at its mark (once)."""
        self.meter.reset()
        self._marks.clear()
        if self._config.format == "assistants":
            yield from read_export(
                self._root, self._config.thread_order, self._config.lone_surrogates
            )
            return
        for path in self._files:
            yield from self._read_file(path, skip)

    def _detect_first_file(self) -> None:
        for path in self._files:
            try:
                layout = sniff_layout(path)
                found = detect_file_format(path, layout, self._config)
            except OSError as exc:
                if self._several:
                    continue  # this file fails alone when it is read
                raise SourceOpenError(f"cannot read {path}: {exc}") from exc
            self._detected[path] = (layout, found)
            if layout is Layout.EMPTY or (found is None and _holds_no_record(path, layout)):
                continue  # an empty file, `[]`, or only unreadable records: nothing to detect
            if found is None and self._several:
                continue  # an unrecognised file of a directory fails alone when it is read
            if found is None:
                raise SourceOpenError(
                    f"cannot tell the format of {path}: its first record is not a Chat "
                    "Completions conversation, fine-tuning line, ShareGPT record, ChatGPT "
                    f"export, Assistants export or Responses history; {_FORMAT_HINT}"
                )
            return

    def _layout_and_format(self, path: SourceFile) -> tuple[Layout, JsonFormat | None]:
        known = self._detected.pop(path, None)
        if known is not None:
            return known
        layout = sniff_layout(path)
        if self._config.format != "auto":
            return layout, self._config.format
        return layout, detect_file_format(path, layout, self._config)

    def _read_file(
        self, path: SourceFile, skip: Callable[[str], bool] | None
    ) -> Iterator[SourceRecord]:
        yield from self._records_of(path, skip)
        self.meter.finish(file_size(path))

    def _relname(self, path: SourceFile) -> str:
        if isinstance(path, ZipMember):
            return f"{self._relname(path.archive)}/{path.name}"
        return path.name if path == self._root else path.relative_to(self._root).as_posix()

    def _records_of(
        self, path: SourceFile, skip: Callable[[str], bool] | None
    ) -> Iterator[SourceRecord]:
        display = str(path)
        relname = self._relname(path)
        try:
            layout, found = self._layout_and_format(path)
        except OSError as exc:
            yield SourceFailure(
                source_kind="json",
                location=display,
                code="unreadable_file",
                message=f"cannot read {display}: {exc}",
            )
            return
        if found is None and layout is not Layout.EMPTY and _holds_no_record(path, layout):
            # Nothing readable to tell the format from: each unreadable record fails alone.
            for raw in iter_raw_records(path, display=display, relname=relname, layout=layout):
                yield SourceFailure(
                    source_kind="json",
                    location=raw.location,
                    code=raw.code if isinstance(raw, RawFailure) else "unknown_format",
                    message=raw.message
                    if isinstance(raw, RawFailure)
                    else f"cannot tell the format of {raw.location}; {_FORMAT_HINT}",
                )
            return
        if found is None:
            if layout is not Layout.EMPTY:
                yield SourceFailure(
                    source_kind="json",
                    location=display,
                    code="unknown_format",
                    message=f"cannot tell the format of {display}; {_FORMAT_HINT}",
                )
            return
        if found == "assistants" and isinstance(path, ZipMember):
            yield SourceFailure(
                source_kind="assistants",
                location=display,
                code="unknown_format",
                message=f"{display} is an Assistants export inside a ChatGPT export's archive; "
                "unzip it and give its directory",
            )
            return
        if found == "assistants":
            assert isinstance(path, Path)
            logger.debug("reading %s as an Assistants export", display)
            yield from read_export(path, self._config.thread_order, self._config.lone_surrogates)
            return
        logger.debug("reading %s as %s (%s)", display, found, layout.value)
        marked = layout is Layout.JSONL and found in _ONE_PER_RECORD and not self._several
        start, self._start = self._start, None
        records = iter_raw_records(
            path,
            display=display,
            relname=relname,
            layout=layout,
            meter=self.meter,
            start=start if marked else None,
            marks=self._remember_mark if marked else None,
        )
        for raw in records:
            if isinstance(raw, RawFailure):
                yield SourceFailure(
                    source_kind=found, location=raw.location, code=raw.code, message=raw.message
                )
                continue
            ctx = RecordContext(self._config, raw.location, raw.derived_id)
            value, replaced = raw.value, None
            if raw.surrogates:
                if self._config.lone_surrogates == "fail":
                    yield lone_surrogate_failure(found, raw.location, raw.surrogates)
                    continue
                value, replaced = replace_lone_surrogates(value), lone_surrogate_note(raw)
            if skip is not None and found in ("chat_completions", "finetune"):
                unread = _unread(value, ctx, found, skip)
                if unread is not None:
                    yield unread
                    continue
            try:
                for conversation in convert_record(value, ctx, found):
                    if replaced is not None:
                        conversation.notes.append(replaced)
                    yield conversation
            except DecodeError as exc:
                yield SourceFailure(
                    source_kind=found,
                    location=raw.location,
                    code=exc.code,
                    message=exc.message,
                    conversation_id=exc.conversation_id,
                )
            except ValidationError as exc:
                yield SourceFailure(
                    source_kind=found,
                    location=raw.location,
                    code="invalid_record",
                    message=f"{raw.location}: a value has an unexpected type: "
                    f"{exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}",
                )


def _unread(
    value: object, ctx: RecordContext, found: str, skip: Callable[[str], bool]
) -> UnreadConversation | None:
    conversation_id = readable_id(value, ctx)
    if conversation_id is None or not skip(conversation_id):
        return None
    return UnreadConversation(source_kind=found, id=conversation_id, location=ctx.location)


def _holds_no_record(path: SourceFile, layout: Layout) -> bool:
    """True when no record of the file can be parsed (empty, `[]`, or all broken)."""
    return layout is not Layout.EMPTY and peek_first_value(path, layout) is None


def lone_surrogate_failure(
    source_kind: str, location: str, paths: Sequence[str], conversation_id: str | None = None
) -> SourceFailure:
    """The failure of a record holding lone surrogates, under the default policy."""
    return SourceFailure(
        source_kind=source_kind,
        location=location,
        code="lone_surrogate",
        message=f"{location}: a lone UTF-16 surrogate escape in {', '.join(paths)}; it is not "
        "text and cannot be sent (lone_surrogates = 'replace' migrates it with U+FFFD)",
        conversation_id=conversation_id,
    )


def lone_surrogate_note(raw: RawRecord) -> SourceNote:
    """The finding for lone surrogates replaced by U+FFFD."""
    return SourceNote(
        code="lone_surrogate_replaced",
        message=f"{raw.location}: a lone UTF-16 surrogate in {', '.join(raw.surrogates)} was "
        "replaced by U+FFFD",
        count=len(raw.surrogates),
    )


def convert_record(
    value: object, ctx: RecordContext, found: JsonFormat
) -> list[SourceConversation]:
    """Read one record in the given (non-auto, non-assistants) format."""
    match found:
        case "chat_completions" | "finetune":
            return [read_chat_completions(value, ctx, source_kind=found)]
        case "sharegpt":
            return [read_sharegpt(value, ctx)]
        case "chatgpt":
            return read_chatgpt(value, ctx)
        case "responses":
            return [read_responses(value, ctx)]
    raise ValueError(f"no record reader for format {found!r}")
