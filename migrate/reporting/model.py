"""What the human-readable report shows, as data: `summary.json` holds it under `report`.

Every number the HTML page prints is a field here, so the page can be checked against the
machine-readable summary. Aggregates only: whatever the job's size, this stays small (examples,
largest conversations and time buckets are capped).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

MAX_EXAMPLES = 3
"""Example conversations listed per code."""
MAX_LARGEST = 10
MAX_BUCKETS = 60
"""Points of a time chart; the bucket width grows with the run's length."""


class Example(BaseModel):
    source_id: str | None
    """The source conversation's id."""
    location: str
    message: str


class CodeCount(BaseModel):
    """One finding or error code in a job."""

    code: str
    count: int
    """Occurrences (a finding can occur several times in one conversation)."""
    conversations: int
    """Conversations it affected."""
    share: float
    """Percent of the source's conversations it affected, one decimal."""
    meaning: str
    remedy: str
    examples: list[Example] = Field(default_factory=list)


class Largest(BaseModel):
    source_id: str
    location: str
    items: int
    calls: int


class Estimate(BaseModel):
    """What a run of a plan would cost, at a given request rate."""

    rate_per_minute: int
    calls: int
    minutes: float
    """`calls / rate_per_minute`, one decimal: the floor, with no retry and no 429."""
    plan_bytes: int
    """Size of `plan.jsonl`: the requests a run sends."""
    disk_bytes: int
    """Room a run needs for its state store and report files (see `disk_formula`)."""
    disk_formula: str


class Bucket(BaseModel):
    """One time slice of a run, `start` seconds after the first call."""

    start: float
    conversations: int = 0
    """Conversations that reached a final status in the slice."""
    items: int = 0
    """Items confirmed landed (writes applied or found by reconciliation)."""
    writes: int = 0
    """Write calls resolved (creates, appends, deletes)."""
    retries: int = 0
    """Writes that failed and were sent again (429, timeouts, dropped connections)."""
    reconciliations: int = 0
    """Appends with an unknown outcome (each reconciled before it is resent), and open writes
    reconciled when a conversation was taken over."""
    pauses: int = 0
    """429 pauses met (from `events.jsonl`)."""


class Timeline(BaseModel):
    bucket_seconds: float
    started_at: float
    """Unix time of the first write."""
    buckets: list[Bucket]
    peak_conversations: int
    peak_items: int
    peak_retries: int
    source: str
    """Where the figures come from, said on the page."""


class Session(BaseModel):
    """One process that worked on the job (`run`, `resume` or `work`)."""

    worker: str
    started_at: float
    elapsed: float
    planner: bool


class Pauses(BaseModel):
    count: int
    seconds: float
    lowest_rate: float | None
    """Requests per second the rate limiter settled on after its deepest cut (None: no cap)."""
    logged: bool
    """Whether the job directory has `events.jsonl` (processes without one do not log)."""


class ReportData(BaseModel):
    """The report section of `summary.json`."""

    kind: Literal["plan", "run"]
    conversations: int
    errors: list[CodeCount]
    findings: list[CodeCount]
    largest: list[Largest] = Field(default_factory=list)
    estimate: Estimate | None = None
    timeline: Timeline | None = None
    sessions: list[Session] = Field(default_factory=list)
    pauses: Pauses | None = None
    samples: int = 0
    """Conversations in the viewer (the page, not `summary.json`, holds their content)."""

    def top(self, kind: Literal["errors", "findings"], count: int = 5) -> list[CodeCount]:
        """The most frequent codes, most conversations first."""
        rows: list[CodeCount] = getattr(self, kind)
        return sorted(rows, key=lambda row: (-row.conversations, row.code))[:count]


def dump(data: ReportData) -> dict[str, Any]:
    return data.model_dump(mode="json")
