"""Every real recorded Responses call whose response says how many input tokens it took."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.spec import REAL_FIXTURES

_COUNTED = re.compile(r"/v1/responses(/input_tokens)?$")


@dataclass(frozen=True)
class RecordedCall:
    """One call: its request body and the input tokens the API reported for it."""

    name: str
    request: dict[str, Any]
    input_tokens: int
    response: dict[str, Any]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The input as items, `instructions` first as a developer message (as the API sees it)."""
        raw = self.request["input"]
        items = (
            [{"type": "message", "role": "user", "content": raw}] if isinstance(raw, str) else raw
        )
        instructions = self.request.get("instructions")
        if instructions:
            developer = {"type": "message", "role": "developer", "content": instructions}
            items = [developer, *items]
        return items

    @property
    def text_only(self) -> bool:
        """Only messages with text, and nothing but the input that adds tokens."""
        extra = set(self.request) - {
            "model", "input", "stream", "store", "instructions", "include", "reasoning",
            "max_output_tokens", "service_tier", "prompt_cache_key", "prompt_cache_retention",
        }  # fmt: skip
        if extra or not isinstance(self.request.get("input"), (str, list)):
            return False
        return all(
            item.get("type", "message") == "message"
            and (
                isinstance(item["content"], str)
                or all(part["type"] in ("input_text", "output_text") for part in item["content"])
            )
            for item in self.items
        )


def recorded_calls() -> Iterator[RecordedCall]:
    """Every counted call in `tests/fixtures/real/`, in file order."""
    for path in sorted(REAL_FIXTURES.rglob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        for index, entry in enumerate(document.get("Entries", [])):
            body, response = entry.get("RequestBody"), entry.get("ResponseBody")
            if entry.get("RequestMethod") != "POST" or not _COUNTED.search(entry["RequestUri"]):
                continue
            if not isinstance(body, dict) or not isinstance(response, dict):
                continue
            usage = response.get("usage") or response
            if isinstance(usage.get("input_tokens"), int):
                name = f"{path.relative_to(REAL_FIXTURES).as_posix()}#{index}"
                yield RecordedCall(name, body, usage["input_tokens"], response)
