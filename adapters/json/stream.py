"""Streaming access to JSON and JSONL files: layout sniffing and raw records with positions.

Memory stays flat whatever the file size: JSONL is read line by line, JSON arrays item by item
framed by `adapters.json.frames` and parsed one at a time. Positions: JSONL lines are 1-based
(`file:12`), array items 0-based (`file[3]`), a file holding one object is just `file`. A broken
JSONL line or array item (malformed JSON, invalid UTF-8, a bad escape) fails alone, located by
line or byte offset, and reading goes on; see `adapters.json.frames` for what happens when an
item's brackets do not balance.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from typing import IO, Any, BinaryIO, TypeVar

import ijson

from adapters.base import lone_surrogate_paths, may_hold_surrogates
from adapters.json.frames import ArrayEnd, Frame, first_key, frame_array, item_starts
from adapters.json.listing import JSONL_SUFFIXES, SourceFile

logger = logging.getLogger(__name__)


_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024
"""ijson's read size: yajl re-joins a string split over reads, so a 30 MB message read 64 KiB at
a time costs seconds; 1 MiB reads make it a fraction of a second for the same flat memory."""
_FIRST_LINE_LIMIT = 64 * 1024 * 1024
_PEEK_LINES = 1000
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_MESSAGE_LIST_KEYS = ("messages", "conversations")


class Layout(Enum):
    """How values are laid out in a file."""

    JSONL = "jsonl"
    ARRAY = "array"
    OBJECT = "object"
    EMPTY = "empty"
    NOT_JSON = "not_json"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One parsed top-level value and where it came from."""

    value: Any
    location: str
    derived_id: str
    surrogates: tuple[str, ...] = ()
    """JSON paths of strings holding a lone surrogate (the reader applies its policy)."""


@dataclass(frozen=True, slots=True)
class RawFailure:
    """A value that could not be parsed."""

    location: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class LineMark:
    """Where a JSON Lines record starts: its line, its byte offset, and a digest of every byte
    of the file before it (so a later read can tell the bytes before it are unchanged)."""

    line: int
    offset: int
    digest: str

    def encode(self) -> str:
        return f"jsonl:{self.line}:{self.offset}:{self.digest}"

    @classmethod
    def decode(cls, text: str) -> LineMark | None:
        """The mark `encode` wrote, or None for anything else."""
        kind, _, rest = text.partition(":")
        line, _, rest = rest.partition(":")
        offset, _, digest = rest.partition(":")
        if kind != "jsonl" or not line.isdigit() or not offset.isdigit() or not digest:
            return None
        return cls(int(line), int(offset), digest)


MarkRecorder = Callable[[str, LineMark], None]
"""Told the location and `LineMark` of each record as it is read."""


def _prefix_digest() -> Any:
    return hashlib.blake2b(digest_size=16)


@dataclass(frozen=True, slots=True)
class LineStart:
    """A verified place to start reading a JSON Lines file: the mark, and the digest of the
    bytes before it, ready to take the bytes after it."""

    mark: LineMark
    digest: Any


def verify_line_mark(path: SourceFile, mark: LineMark) -> LineStart | None:
    """The start at `mark` if the file's bytes before it digest as they did, else None."""
    digest = _prefix_digest()
    left = mark.offset
    with path.open("rb") as f:
        while left > 0:
            chunk = f.read(min(left, _READ_BYTES))
            if not chunk:
                return None
            digest.update(chunk)
            left -= len(chunk)
    if digest.hexdigest() != mark.digest:
        return None
    return LineStart(mark, digest)


_File = TypeVar("_File", bound=IO[bytes])


class ByteMeter:
    """How many bytes of a source's files have been read: those done, and the open one's."""

    def __init__(self) -> None:
        self.finished = 0
        self._open: IO[bytes] | None = None

    def reset(self) -> None:
        """A new read starts."""
        self.finished = 0
        self._open = None

    def reading(self, file: _File) -> _File:
        """Watch `file` (the one being read now) until the next call."""
        self._open = file
        return file

    def finish(self, size: int) -> None:
        """The watched file is read to its end: `size` bytes."""
        self.finished += size
        self._open = None

    @property
    def done(self) -> int:
        current = self._open
        try:
            at = 0 if current is None or current.closed else current.tell()
        except (OSError, ValueError):
            at = 0
        return self.finished + at


def sniff_layout(path: SourceFile) -> Layout:
    """Tell JSONL, a JSON array and a single JSON object apart from the first bytes."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
        first = head.removeprefix(_BOM).lstrip(_WHITESPACE)[:1]
        while not first and len(head) == _SNIFF_BYTES:
            head = f.read(_SNIFF_BYTES)
            first = head.lstrip(_WHITESPACE)[:1]
        if path.suffix.lower() in JSONL_SUFFIXES:
            return Layout.JSONL if first else Layout.EMPTY
        if not first:
            return Layout.EMPTY
        if first == b"[":
            return Layout.ARRAY
        if first != b"{":
            return Layout.NOT_JSON
        # A `.json` file whose first line is a whole object is JSON Lines (or one object on one
        # line, which reads the same either way); a pretty-printed object spans several lines.
        f.seek(0)
        line = f.readline(_FIRST_LINE_LIMIT)
    try:
        value = json.loads(line)
    except ValueError:
        return Layout.OBJECT
    return Layout.JSONL if isinstance(value, dict) else Layout.OBJECT


def looks_like_message(value: Any) -> bool:
    """True for a single chat message (so an array of them is one conversation)."""
    if not isinstance(value, dict) or not ("role" in value or "from" in value):
        return False
    return not any(isinstance(value.get(key), list) for key in _MESSAGE_LIST_KEYS)


def iter_raw_records(
    path: SourceFile,
    *,
    display: str,
    relname: str,
    layout: Layout,
    one_record: Callable[[Any], bool] = looks_like_message,
    meter: ByteMeter | None = None,
    start: LineStart | None = None,
    marks: MarkRecorder | None = None,
) -> Iterator[RawRecord | RawFailure]:
    """Yield every top-level record of `path` in file order, or the failure to parse it.

    A JSON array is one record when `one_record` holds for its first item that parses (by
    default: a chat message, so the array is one conversation's messages), else each item is.
    `meter`, when given, can tell at any time how far into the file the reading has got.
    JSON Lines only: `start` (from `verify_line_mark`) reads from there on, and `marks` is told
    each record's `LineMark`.
    """
    meter = meter or ByteMeter()
    try:
        match layout:
            case Layout.JSONL:
                yield from _iter_jsonl(path, display, relname, meter, start, marks)
            case Layout.ARRAY:
                yield from _iter_array(path, display, relname, one_record, meter)
            case Layout.OBJECT:
                yield from _iter_object(path, display, relname)
            case Layout.EMPTY:
                logger.warning("%s is empty", display)
            case Layout.NOT_JSON:
                yield RawFailure(
                    display, "not_json", f"{display} does not start with a JSON array or object"
                )
    except OSError as exc:
        yield RawFailure(display, "unreadable_file", f"cannot read {display}: {exc}")


def peek_first_value(path: SourceFile, layout: Layout) -> Any:
    """The first record of the file (for format detection), or None if there is none."""
    match layout:
        case Layout.JSONL:
            with path.open("rb") as f:
                for count, raw in enumerate(f):
                    if count >= _PEEK_LINES:
                        break
                    if not raw.strip():
                        continue
                    try:
                        return json.loads(raw)
                    except ValueError:
                        continue
            return None
        case Layout.ARRAY:
            with path.open("rb") as f:
                for count, frame in enumerate(frame_array(f)):
                    if isinstance(frame, ArrayEnd) or count >= _PEEK_LINES:
                        break
                    value = _parse_frame(frame, str(path))
                    if not isinstance(value, RawFailure):
                        return [value] if looks_like_message(value) else value
            return None
        case Layout.OBJECT:
            value = _parse_frame(_whole_file(path), str(path), whole=True)
            return None if isinstance(value, RawFailure) else value
    return None


def scan_object_prefixes(path: SourceFile, *, max_events: int) -> list[tuple[str, str, Any]]:
    """The first `max_events` scalar/key parse events of a JSON object file, without loading it."""
    events: list[tuple[str, str, Any]] = []
    with path.open("rb") as f:
        try:
            for prefix, event, value in ijson.parse(f, use_float=True, buf_size=_READ_BYTES):
                if event in ("map_key", "string"):
                    events.append((prefix, event, value if len(value) < 200 else value[:200]))
                if len(events) >= max_events:
                    break
        except (ijson.JSONError, UnicodeDecodeError):
            pass  # what was scanned before the error is still evidence
    return events


def _iter_jsonl(
    path: SourceFile,
    display: str,
    relname: str,
    meter: ByteMeter,
    start: LineStart | None = None,
    marks: MarkRecorder | None = None,
) -> Iterator[RawRecord | RawFailure]:
    first_line, offset = (1, 0) if start is None else (start.mark.line, start.mark.offset)
    digest = _prefix_digest() if start is None else start.digest.copy()
    with meter.reading(path.open("rb")) as f:
        f.seek(offset)
        for lineno, raw in enumerate(f, first_line):
            if marks is not None:
                if raw.strip():
                    marks(f"{display}:{lineno}", LineMark(lineno, offset, digest.hexdigest()))
                digest.update(raw)
                offset += len(raw)
            if lineno == 1:
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            location = f"{display}:{lineno}"
            try:
                value = json.loads(raw)
            except RecursionError:
                yield RawFailure(
                    location, "malformed_json", f"{location}: nested too deeply to read"
                )
                continue
            except UnicodeDecodeError as exc:
                yield RawFailure(
                    location,
                    "invalid_utf8",
                    f"{location}: invalid UTF-8 at byte {exc.start + 1} of the line",
                )
                continue
            except json.JSONDecodeError as exc:
                yield RawFailure(
                    location,
                    "malformed_json",
                    f"{location}: malformed JSON at column {exc.colno}: "
                    f"{exc.msg.removesuffix(' at')}",
                )
                continue
            yield RawRecord(value, location, f"{relname}:{lineno}", _surrogates(raw, value))


def _surrogates(raw: bytes, value: Any) -> tuple[str, ...]:
    return tuple(lone_surrogate_paths(value)) if may_hold_surrogates(raw) else ()


def _iter_array(
    path: SourceFile,
    display: str,
    relname: str,
    one_record: Callable[[Any], bool],
    meter: ByteMeter,
) -> Iterator[RawRecord | RawFailure]:
    with meter.reading(path.open("rb")) as f:
        items = _array_items(f, display)
        # The first item that parses tells whether the array is one record or many.
        pending: list[RawFailure] = []
        for frame, value in items:
            if isinstance(value, RawFailure):
                pending.append(value)
                continue
            assert frame is not None
            if one_record(value):
                yield _one_record(value, frame, pending, items, display, relname)
                return
            yield from pending
            yield _item_record(frame, value, display, relname)
            break
        else:
            yield from pending
            return
        for frame, value in items:
            if isinstance(value, RawFailure):
                yield value
            else:
                assert frame is not None
                yield _item_record(frame, value, display, relname)


def _item_record(frame: Frame, value: Any, display: str, relname: str) -> RawRecord:
    return RawRecord(
        value,
        f"{display}[{frame.index}]",
        f"{relname}[{frame.index}]",
        _surrogates(frame.data, value),
    )


def _array_items(f: BinaryIO, display: str) -> Iterator[tuple[Frame | None, Any]]:
    """Each framed item with its value (or `RawFailure`); `(None, failure)` for a bad end."""
    index = 0
    pending: Iterator[Frame | ArrayEnd] = frame_array(f)
    while True:
        restart: int | None = None
        for frame in pending:
            if isinstance(frame, ArrayEnd):
                failure = _end_failure(frame, display)
                if failure is not None:
                    yield None, failure
                continue
            frame = replace(frame, index=index)
            value = _parse_frame(frame, display)
            cut = _later_item(frame) if isinstance(value, RawFailure) else None
            if cut is not None:
                # An unterminated string swallowed the items after this one, so the
                # framer's view of strings is inverted from here: this item ends where
                # the next one starts, and framing starts afresh there.
                kept = frame.data[: cut - frame.start].rstrip(b", \t\r\n")
                frame = replace(frame, data=kept)
                value = _parse_frame(frame, display)
                restart = cut
            index += 1
            yield frame, value
            if restart is not None:
                break
        if restart is None:
            return
        f.seek(restart)
        pending = frame_array(_Resumed(f), offset=restart - 1)


class _Resumed:
    """The rest of a file from its current position, read as an array that opens there."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._opened = False

    def read(self, size: int = -1, /) -> bytes:
        if not self._opened:
            self._opened = True
            return b"[" + self._raw.read(size - 1 if size > 1 else size)
        return self._raw.read(size)


def _later_item(frame: Frame) -> int | None:
    """The file offset where a later item starts inside `frame` (an item that does not
    parse), or None. A start counts only when the text after it frames as whole items, not as
    the inside of this one (a nested object with the same leading keys)."""
    if frame.broken is not None:
        return None
    key = first_key(frame.data)
    starts = item_starts(frame.data, key) if key is not None else []
    if not starts:
        return None
    cut = starts[0]
    for sub in frame_array(io.BytesIO(b"[" + frame.data[cut:] + b"]")):
        if isinstance(sub, ArrayEnd) and sub.closed and sub.error_at is not None:
            return None
    return frame.start + cut


def _one_record(
    first: Any,
    head: Frame,
    failed: list[RawFailure],
    items: Iterator[tuple[Frame | None, Any]],
    display: str,
    relname: str,
) -> RawRecord | RawFailure:
    """The whole array as one record (a conversation's messages); any bad item fails it."""
    if failed:
        return _fails_whole(failed[0])
    values = [first]
    surrogates = list(_surrogates(head.data, first))
    for frame, value in items:
        if isinstance(value, RawFailure):
            return _fails_whole(value)
        assert frame is not None
        values.append(value)
        surrogates.extend(f"[{frame.index}]{p}" for p in _surrogates(frame.data, value))
    return RawRecord(values, display, relname, tuple(surrogates))


_READ_ON = ("; the other items are read", "; reading goes on with the next item")


def _fails_whole(failure: RawFailure) -> RawFailure:
    message = failure.message
    for clause in _READ_ON:
        message = message.replace(clause, "")
    return RawFailure(
        failure.location,
        failure.code,
        message + "; the array is one conversation, so none of it is read",
    )


def _parse_frame(frame: Frame, display: str, *, whole: bool = False) -> Any:
    """The item's value, or a `RawFailure` naming its byte offset (`whole`: the frame is the
    file's one value, not an array item)."""
    if whole:
        return _decode(frame, display, _WHOLE)
    where = f" in item {frame.index}, after {frame.index} item(s)"
    if frame.broken is not None:
        offset = frame.error_at if frame.error_at is not None else frame.start
        rest = (
            "; the rest of the file was not read"
            if frame.broken.startswith("the file ends")
            else "; reading goes on with the next item"
        )
        return RawFailure(
            f"{display} byte {offset}",
            "malformed_json",
            f"{display}: malformed JSON at byte {offset} ({frame.broken}){where}{rest}",
        )
    wording = _Wording(
        where=where,
        then=_OTHERS_READ,
        too_deep=f"item {frame.index} at byte {frame.start} is nested too deeply to read"
        + _OTHERS_READ,
        too_deep_at=f"{display} byte {frame.start}",
    )
    return _decode(frame, display, wording)


@dataclass(frozen=True, slots=True)
class _Wording:
    """How a failure to decode a frame is told, an array item's or a whole file's: which item
    (`where`), what happens next (`then`), a value nested too deeply (located at the file
    when `too_deep_at` is None), and whether a JSON error gives its line and column."""

    where: str
    then: str
    too_deep: str
    too_deep_at: str | None
    line_and_column: bool = False


_OTHERS_READ = "; the other items are read"
_WHOLE = _Wording(
    where="",
    then="; the file holds one value, not read",
    too_deep="nested too deeply to read",
    too_deep_at=None,
    line_and_column=True,
)


def _decode(frame: Frame, display: str, wording: _Wording) -> Any:
    """The frame's value (UTF-8, then JSON), or the `RawFailure` saying why not."""
    try:
        text = frame.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = frame.start + exc.start
        return RawFailure(
            f"{display} byte {offset}",
            "invalid_utf8",
            f"{display}: invalid UTF-8 at byte {offset}{wording.where}{wording.then}",
        )
    try:
        return json.loads(text)
    except RecursionError:
        return RawFailure(
            wording.too_deep_at or display, "malformed_json", f"{display}: {wording.too_deep}"
        )
    except json.JSONDecodeError as exc:
        offset = frame.start + len(text[: exc.pos].encode("utf-8"))
        detail = (
            f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
            if wording.line_and_column
            else exc.msg
        )
        return RawFailure(
            f"{display} byte {offset}",
            "malformed_json",
            f"{display}: malformed JSON at byte {offset} ({detail}){wording.where}{wording.then}",
        )


def _end_failure(end: ArrayEnd, display: str) -> RawFailure | None:
    if end.error_at is None:
        return None
    if end.closed:
        return RawFailure(
            f"{display} byte {end.error_at}",
            "malformed_json",
            f"{display}: data after the array's closing ] at byte {end.error_at}; it was not read",
        )
    return RawFailure(
        f"{display} byte {end.error_at}",
        "malformed_json",
        f"{display}: the file ends at byte {end.error_at} before the array's closing ]",
    )


def _iter_object(path: SourceFile, display: str, relname: str) -> Iterator[RawRecord | RawFailure]:
    # One object is parsed whole (as a parser building it would hold it whole anyway), by the
    # parser that keeps lone surrogates visible: yajl turns a lone high surrogate into `?`.
    frame = _whole_file(path)
    value = _parse_frame(frame, display, whole=True)
    if isinstance(value, RawFailure):
        yield value
        return
    yield RawRecord(value, display, relname, _surrogates(frame.data, value))


def _whole_file(path: SourceFile) -> Frame:
    with path.open("rb") as f:  # a whole object: read at once, so `finish` counts it
        data = f.read()
    start = len(_BOM) if data.startswith(_BOM) else 0
    return Frame(0, start, data[start:])
