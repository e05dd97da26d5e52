"""How the target stores what we send: the item it lists for one we sent, and how a listed item
differs from the planned one (what reconciliation and `verify` compare)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def expected_item(planned: Mapping[str, Any]) -> dict[str, Any]:
    """What the target lists for an item we sent: string content becomes parts."""
    item = dict(planned)
    item.setdefault("type", "message")
    if item["type"] == "message" and isinstance(item.get("content"), str):
        part_type = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": part_type, "text": item["content"]}]
    return item


def item_difference(planned: Mapping[str, Any], listed: Mapping[str, Any]) -> str | None:
    """Why a listed item is not the planned one (None when it is).

    Keys the target adds (`id`, `status`, empty `annotations`, `logprobs`, ...) are ignored;
    every key we sent must come back with the same value.
    """
    return _difference(expected_item(planned), listed, "")


def _difference(expected: Any, actual: Any, path: str) -> str | None:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{path or 'item'}: expected an object, found {_short(actual)}"
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                if value in ([], None):
                    continue
                return f"{where}: missing"
            reason = _difference(value, actual[key], where)
            if reason is not None:
                return reason
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{path}: expected {_short(expected)}, found {_short(actual)}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            reason = _difference(want, got, f"{path}[{index}]")
            if reason is not None:
                return reason
        return None
    if expected != actual:
        return f"{path}: expected {_short(expected)}, found {_short(actual)}"
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
