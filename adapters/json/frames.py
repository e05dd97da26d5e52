"""Framing of a JSON array: the byte span of each top-level item, found before any parsing.

The framer reads bytes and follows only strings, escapes and brackets, so a malformed item,
invalid UTF-8 or a bad escape inside one item never moves the boundaries of the others: each
item is parsed on its own afterwards. UTF-8 is safe to scan byte-wise because no byte of a
multi-byte character is below 0x80.

Where the brackets themselves are broken (a closing bracket of the wrong kind, an unterminated
string that swallows what follows, a file cut short) the framer cannot know where the item ends.
It then looks for the start of a later item: the array's items (almost always) begin with the
same keys, so `, {"<first key>": <scalar>, "<second key>":` after the broken point is taken as
the next item (one key when the first value is not a scalar). The
broken span is one failed item; every item after the cut is framed and read as usual. Only a
span with no such start left (the end of a cut file) is counted as one item. An unterminated
string can also invert the framer's view of what is a string while the brackets still balance:
the reader (`adapters.json.stream`) then finds an item that does not parse but holds such a
start, cuts it there, and frames afresh from that start. Counts are exact as long as the items
share their leading keys and no nested object begins with the same keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class SupportsRead(Protocol):
    """Anything with a binary `read(size)`."""

    def read(self, size: int = -1, /) -> bytes: ...


logger = logging.getLogger(__name__)

_READ_BYTES = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_STRUCTURE = re.compile(rb'[\[\]{}",]')
_IN_STRING = re.compile(rb'["\\]')
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_CLOSERS = {ord("["): ord("]"), ord("{"): ord("}")}


@dataclass(frozen=True, slots=True)
class Frame:
    """One top-level item's bytes and where they start in the file."""

    index: int
    start: int
    data: bytes
    broken: str | None = None
    """Why the item's end could not be found (its bytes are then what was read of it)."""
    error_at: int | None = None
    """For a broken item, the offset where framing failed."""


@dataclass(frozen=True, slots=True)
class ArrayEnd:
    """The end of the array: `closed` is False when the file ended before its `]`; `error_at`
    is the offset of bytes after the `]` (closed) or of the end of the file (not closed), or
    None when nothing is wrong there."""

    closed: bool
    error_at: int | None = None


class NotAnArray(ValueError):
    """The bytes do not start with `[`."""


_KEY = rb'"((?:[^"\\]|\\.){1,128})"\s*:'
_SCALAR = rb'\s*(?:"(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null)\s*,\s*'
_LEADING_KEYS = re.compile(rb"\A\s*\{\s*" + _KEY + rb"(?:" + _SCALAR + _KEY + rb")?")


def first_key(data: bytes) -> bytes | None:
    """A pattern for how the object's text begins: its first key and, when the first value is
    a scalar, its second key (`{"id": ..., "messages":`), or None if it is not an object."""
    found = _LEADING_KEYS.match(data)
    if found is None:
        return None
    pattern = rb'\{\s*"' + re.escape(found.group(1)) + rb'"\s*:'
    if found.group(2) is not None:
        pattern += _SCALAR + rb'"' + re.escape(found.group(2)) + rb'"\s*:'
    return pattern


def item_starts(data: bytes, key: bytes) -> list[int]:
    """Offsets in `data` where an item beginning like `key` (see `first_key`) follows a comma."""
    pattern = re.compile(rb",\s*(" + key + rb")")
    return [found.start(1) for found in pattern.finditer(data)]


def frame_array(stream: SupportsRead, *, offset: int = 0) -> Iterator[Frame | ArrayEnd]:
    """Yield the frames of the array `stream` holds, then one `ArrayEnd`.

    `offset` is the file offset of the stream's first byte. Raises `NotAnArray` when the
    stream does not start (after a BOM and whitespace) with `[`.
    """
    buf = b""
    base = offset  # offset in the file of buf[0]
    eof = False
    key: bytes | None = None

    def more() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        chunk = stream.read(_READ_BYTES)
        if not chunk:
            eof = True
            return False
        buf += chunk
        return True

    while True:
        head = buf.removeprefix(_BOM)
        found = _NOT_SPACE.search(head)
        if found is not None:
            pos = len(buf) - len(head) + found.start()
            break
        if not more():
            raise NotAnArray("the file is empty")
    if buf[pos : pos + 1] != b"[":
        raise NotAnArray("the file does not start with [")
    pos += 1

    def resync(begin: int) -> int | None:
        """Offset in buf of the next item start after `begin`, reading on as needed."""
        if key is None:
            return None
        scanned = begin
        while True:
            starts = item_starts(buf[scanned:], key)
            if starts:
                return scanned + starts[0]
            scanned = max(begin, len(buf) - 512)
            if not more():
                return None

    index = 0
    stack: list[int] = []
    in_string = False
    start: int | None = None  # offset in buf of the current item
    after_comma = False
    while True:
        if pos >= len(buf):
            # Keep only the current item: memory holds one item at a time.
            keep = start if start is not None else len(buf)
            base += keep
            buf = buf[keep:]
            pos -= keep
            if start is not None:
                start = 0
            if more():
                continue
            if start is not None and not stack and not in_string:
                yield Frame(index, base + start, buf[start:])  # a last item with no `]` after it
                start = None
            if start is None:
                yield ArrayEnd(closed=False, error_at=base + len(buf))
                return
            broken, error_at = "the file ends inside it", base + len(buf)
        elif in_string:
            found = _IN_STRING.search(buf, pos)
            if found is None:
                pos = len(buf)
            elif buf[found.start()] == ord("\\"):
                pos = found.end() + 1  # the escaped byte, whatever it is
            else:
                in_string = False
                pos = found.end()
            continue
        else:
            found = _STRUCTURE.search(buf, pos)
            stop = found.start() if found is not None else len(buf)
            if start is None and not stack:
                text = _NOT_SPACE.search(buf, pos, stop)
                if text is not None:
                    start = text.start()  # a number, true, false or null item
            if found is None:
                pos = len(buf)
                continue
            byte = buf[stop]
            pos = found.end()
            if byte == ord('"'):
                start = stop if start is None else start
                in_string = True
                continue
            if byte in _CLOSERS:
                start = stop if start is None else start
                stack.append(_CLOSERS[byte])
                continue
            if byte == ord(","):
                if stack:
                    continue
                if start is None:
                    # No value between two commas: no record is there to count or fail.
                    logger.warning("an empty slot between commas at byte %d", base + stop)
                else:
                    data = buf[start:stop]
                    key = key or first_key(data)
                    yield Frame(index, base + start, data)
                    index += 1
                start = None
                after_comma = True
                continue
            if stack and stack[-1] == byte:
                stack.pop()
                continue
            if not stack and byte == ord("]"):
                if start is not None:
                    yield Frame(index, base + start, buf[start:stop])
                elif after_comma:
                    logger.warning("a comma before the closing ] at byte %d", base + stop)
                while _NOT_SPACE.search(buf, pos) is None and more():
                    pass
                text = _NOT_SPACE.search(buf, pos)
                yield ArrayEnd(closed=True, error_at=None if text is None else base + text.start())
                return
            start = stop if start is None else start
            broken = f"a {chr(byte)!r} at byte {base + stop} closes nothing that is open"
            error_at = base + stop
        # The item's end cannot be known: cut it at the next item start, if there is one.
        key = key or first_key(buf[start:])
        after = resync(start + 1)
        end = after if after is not None else len(buf)
        yield Frame(index, base + start, buf[start:end], broken, error_at)
        index += 1
        start, stack, in_string, after_comma = None, [], False, False
        if after is None:
            yield ArrayEnd(closed=False, error_at=None)
            return
        pos = after
