"""The job log: `events.jsonl` in the job directory, one line per 429 pause a process met.

The state store keeps what each conversation's writes did (intents and their outcomes), which
gives throughput, retries and reconciliations over time; it keeps no 429s (the shared pause is
one row, overwritten). So each process with a job directory appends its pauses here:
`{"at": unix time, "pause": seconds, "rate": requests/s after the pause or null}`. A
`migrate work` process on another machine has no job directory and logs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from migrate.replay.ratelimit import RateLimiter

EVENTS_FILE = "events.jsonl"


def log_pauses(limiter: RateLimiter, job_dir: Path | None) -> None:
    """Append every 429 pause `limiter` meets to the job log (keeps its other listener)."""
    if job_dir is None:
        return
    path = job_dir / EVENTS_FILE
    earlier: Callable[[float], None] | None = limiter.on_pause

    def on_pause(seconds: float) -> None:
        line = {"at": round(time.time(), 3), "pause": seconds, "rate": limiter.rate}
        with path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
        if earlier is not None:
            earlier(seconds)

    limiter.on_pause = on_pause


def read_pauses(job_dir: Path | None) -> list[dict[str, Any]] | None:
    """The logged pauses, oldest first; None when the job has no log."""
    if job_dir is None or not (job_dir / EVENTS_FILE).exists():
        return None
    pauses = []
    with (job_dir / EVENTS_FILE).open(encoding="utf-8") as log:
        for line in log:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if isinstance(event, dict) and "at" in event and "pause" in event:
                pauses.append(event)
    return sorted(pauses, key=lambda event: float(event["at"]))
