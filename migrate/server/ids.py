"""Server-minted ids that look like the real API's."""

from __future__ import annotations

import random
import secrets
import time

_id_random = random.Random(secrets.randbits(128))
"""Ids need to be unique and random-looking, not secret: a fast generator seeded once."""


def mint_id(prefix: str, *, suffix: str | None = None) -> str:
    """A server id like the real ones: prefix, 8 hex of the clock, 40 random hex.

    Items reuse their conversation's last 16 hex digits, as the real API's ids do.
    """
    head = f"{int(time.time()) & 0xFFFFFFFF:08x}"
    if suffix is None:
        return f"{prefix}_{head}{_id_random.getrandbits(160):040x}"
    return f"{prefix}_{head}{_id_random.getrandbits(96):024x}{suffix}"


def request_id() -> str:
    """An `x-request-id` value."""
    return f"req_{_id_random.getrandbits(128):032x}"
