"""Input tokens of a conversation's items as the model sees them when the app continues it.

Rules, fitted on the real recorded Responses calls (`tests/fixtures/real/`, each call's
`usage.input_tokens` against its known input):

- a message: the `o200k_base` tokens of its text parts plus `per_message` (4);
- a `function_call` (`custom_tool_call`): its name and arguments (input) plus 7; its output: the
  call's name again and the output text plus 7. Fitted on the one recorded Responses call with a
  function call and its output (exact); the recorded Chat Completions calls come out 1 token
  over per pair;
- the whole input: `reply_overhead` more (3 on gpt-4o and gpt-4.1, 2 on gpt-5).

Text-only inputs come out exact on every recorded call. Images and files are estimates,
flagged in the result:

- an image costs what OpenAI's vision guide says for the model (512 px tiles or 32 px
  patches). Its size is read from the data URL when it has one; an image by URL or file id is
  assumed to be 1024 x 1024;
- a file's content is counted when it is text sent inline (`text/*`, JSON, CSV, XML); any other
  file (PDF, or a file id) is counted as 0 tokens.

Instructions and tool definitions are the app's, sent with each request, and not counted here.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from migrate.context.encoding import o200k_base
from migrate.context.models import ImageRule, ModelSpec

TOOL_CALL_OVERHEAD = 7
TOOL_OUTPUT_OVERHEAD = 7
ASSUMED_IMAGE_SIZE = (1024, 1024)
MAX_PATCHES = 1536
_TEXT_PARTS = frozenset({"input_text", "output_text"})
_CALLS = frozenset({"function_call", "custom_tool_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})
_TEXT_FILE_TYPES = ("text/", "application/json", "application/xml", "application/csv")
_IMAGE_HEADER_BYTES = 65_536


@dataclass
class TokenCount:
    """The count of one conversation: a total and one figure per item."""

    per_item: list[int] = field(default_factory=list)
    reply_overhead: int = 0
    images: int = 0
    images_sized: int = 0
    """Images whose size was read from their data; the others were assumed."""
    files_uncounted: int = 0

    @property
    def total(self) -> int:
        return sum(self.per_item) + self.reply_overhead

    @property
    def estimated(self) -> bool:
        return bool(self.images or self.files_uncounted)

    def describe_estimate(self) -> str:
        """What the estimate rests on, for a finding's message."""
        parts: list[str] = []
        if self.images:
            assumed = self.images - self.images_sized
            parts.append(
                f"{self.images} image(s) by the model's documented rule"
                + (
                    f", {assumed} of them assumed {ASSUMED_IMAGE_SIZE[0]}x{ASSUMED_IMAGE_SIZE[1]}"
                    if assumed
                    else ""
                )
            )
        if self.files_uncounted:
            parts.append(f"{self.files_uncounted} file(s) whose content is not counted")
        return "; ".join(parts)


def count_items(items: Iterable[Mapping[str, Any]], model: ModelSpec) -> TokenCount:
    """Count `items` (API items as planned or as a server lists them) for `model`."""
    encode = o200k_base().encode_ordinary
    count = TokenCount(reply_overhead=model.reply_overhead)
    per_item = count.per_item
    per_message = model.per_message
    # a conversation calls few tools many times: each name is encoded once, not per call
    name_tokens: dict[str, int] = {"": 0}
    call_name_tokens: dict[str, int] = {}
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            tokens = per_message + _content_tokens(item.get("content"), model, count, encode)
        elif kind in _CALLS:
            name = str(item.get("name") or "")
            named = name_tokens.get(name)
            if named is None:
                named = name_tokens[name] = len(encode(name))
            call_name_tokens[str(item.get("call_id"))] = named
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            tokens = TOOL_CALL_OVERHEAD + named + len(encode(str(arguments or "")))
        elif kind in _OUTPUTS:
            named = call_name_tokens.get(str(item.get("call_id")), 0)
            output = _content_tokens(item.get("output"), model, count, encode)
            tokens = TOOL_OUTPUT_OVERHEAD + named + output
        else:
            # not an item the planner writes; its fields' text is the best guess available
            tokens = per_message + len(encode(str(_strings(item))))
        per_item.append(tokens)
    return count


def _content_tokens(
    content: Any, model: ModelSpec, count: TokenCount, encode: Callable[[str], list[int]]
) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(encode(content))
    tokens = 0
    for part in content:
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            tokens += len(encode(part.get("text") or ""))
        elif kind == "refusal":
            tokens += len(encode(part.get("refusal") or ""))
        elif kind == "input_image":
            tokens += _image_tokens(part, model.image, count)
        elif kind == "input_file":
            tokens += _file_tokens(part, count)
    return tokens


def _image_tokens(part: Mapping[str, Any], rule: ImageRule, count: TokenCount) -> int:
    count.images += 1
    size = _data_url_image_size(part.get("image_url"))
    if size is None:
        size = ASSUMED_IMAGE_SIZE
    else:
        count.images_sized += 1
    return image_tokens(*size, detail=str(part.get("detail") or "auto"), rule=rule)


def image_tokens(width: int, height: int, *, detail: str, rule: ImageRule) -> int:
    """Tokens of one `width` x `height` image under `rule` (OpenAI's vision guide)."""
    if rule.kind == "patches":
        return math.ceil(_patches(width, height) * rule.multiplier)
    if detail == "low":
        return rule.base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return rule.base + rule.per_tile * tiles


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(32 * 32 * MAX_PATCHES / (width * height))
    w, h = width * shrink, height * shrink
    shrink *= min(math.floor(w / 32) / (w / 32), math.floor(h / 32) / (h / 32))
    return math.ceil(width * shrink / 32) * math.ceil(height * shrink / 32)


def _data_url_image_size(url: Any) -> tuple[int, int] | None:
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    _, _, data = url.partition(",")
    # the header that holds the size is near the start; decode only that much
    head = data[: _IMAGE_HEADER_BYTES // 3 * 4]
    try:
        raw = base64.b64decode(head + "=" * (-len(head) % 4))
        with Image.open(io.BytesIO(raw)) as image:
            return image.size
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        return None


def _file_tokens(part: Mapping[str, Any], count: TokenCount) -> int:
    data = part.get("file_data")
    if isinstance(data, str) and data.startswith("data:"):
        header, _, payload = data.partition(",")
        if header[5:].startswith(_TEXT_FILE_TYPES):
            try:
                text = base64.b64decode(payload).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                text = ""
            return len(o200k_base().encode_ordinary(text))
    count.files_uncounted += 1
    return 0


def _strings(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_strings(v) for k, v in value.items() if k not in ("id", "type", "status"))
    if isinstance(value, list):
        return " ".join(_strings(v) for v in value)
    return ""
