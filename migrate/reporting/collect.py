"""Aggregates gathered while conversations stream past: counts by code, the largest, samples.

Memory stays bounded whatever the job's size: a counter per code, `MAX_EXAMPLES` examples per
code, a heap of the `MAX_LARGEST` largest conversations and a capped set of viewer samples.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from pathlib import Path

from adapters.model import SourceConversation
from migrate.plan.model import ConversationPlan
from migrate.reporting.codes import describe
from migrate.reporting.model import MAX_EXAMPLES, MAX_LARGEST, CodeCount, Example, Largest
from migrate.reporting.viewer import MAX_SAMPLES, Sample, sample_from
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord, Finding

PlanOutcome = ConversationPlan | ErrorRecord


class CodeTally:
    """Occurrences and affected conversations per code, with the first few examples."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.conversations: dict[str, int] = {}
        self.examples: dict[str, list[Example]] = {}
        self._last: dict[str, str | None] = {}

    def add(
        self, code: str, *, count: int, conversation: str | None, location: str, message: str
    ) -> None:
        """One occurrence; the calls for one conversation come together (source order)."""
        self.counts[code] = self.counts.get(code, 0) + count
        key = f"{conversation}\0{location}"
        if self._last.get(code) != key:
            self._last[code] = key
            self.conversations[code] = self.conversations.get(code, 0) + 1
        examples = self.examples.setdefault(code, [])
        if len(examples) < MAX_EXAMPLES and all(e.location != location for e in examples):
            examples.append(Example(source_id=conversation, location=location, message=message))

    def add_finding(self, finding: Finding, location: str) -> None:
        self.add(
            finding.code,
            count=finding.count,
            conversation=finding.conversation_id,
            location=location,
            message=finding.message,
        )

    def add_error(self, error: ErrorRecord) -> None:
        self.add(
            error.code,
            count=1,
            conversation=error.conversation_id,
            location=error.location,
            message=error.message,
        )

    def rows(self, total: int) -> list[CodeCount]:
        """One row per code, most conversations first."""
        rows = []
        for code, count in self.counts.items():
            entry = describe(code)
            affected = self.conversations[code]
            rows.append(
                CodeCount(
                    code=code,
                    count=count,
                    conversations=affected,
                    share=share(affected, total),
                    meaning=entry.meaning,
                    remedy=entry.remedy,
                    examples=self.examples.get(code, []),
                )
            )
        return sorted(rows, key=lambda row: (-row.conversations, row.code))


def share(part: int, total: int) -> float:
    """`part` as a percent of `total`, one decimal."""
    return round(100.0 * part / total, 1) if total else 0.0


class LargestHeap:
    """The `MAX_LARGEST` conversations with the most items."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Largest]] = []
        self._seen = 0

    def add(self, plan: ConversationPlan) -> None:
        self._seen += 1
        # the sequence number breaks ties: the earlier conversation wins
        key = (len(plan.items), -self._seen)
        if len(self._heap) < MAX_LARGEST:
            heapq.heappush(self._heap, (*key, _largest(plan)))
        elif key > self._heap[0][:2]:
            heapq.heapreplace(self._heap, (*key, _largest(plan)))

    def rows(self) -> list[Largest]:
        return [entry[2] for entry in sorted(self._heap, key=lambda e: e[:2], reverse=True)]


def _largest(plan: ConversationPlan) -> Largest:
    calls = 1 + len(plan.batch_sizes) if plan.items else 0
    return Largest(
        source_id=plan.source_id, location=plan.location, items=len(plan.items), calls=calls
    )


class SampleCollector:
    """Conversations for the viewer: the first few, and the first with each error or finding.

    Capped at `MAX_SAMPLES`. A run saves them to `samples.json` in the job directory, so that its
    report, written long after planning, can still show them; a resumed run re-reads the source
    from the start (to check it) and samples it afresh.
    """

    FIRST = 5
    PER_CODE = 2

    def __init__(self, path: Path | None = None) -> None:
        """With `path`, the samples are saved there each time one is added (a few times)."""
        self.path = path
        self.samples: list[Sample] = []
        self._per_code: dict[str, int] = {}
        self._seen = 0

    def observe(self, source: SourceConversation | None, outcome: PlanOutcome) -> None:
        self._seen += 1
        if len(self.samples) >= MAX_SAMPLES:
            return
        codes = (
            [outcome.code]
            if isinstance(outcome, ErrorRecord)
            else sorted({finding.code for finding in outcome.findings})
        )
        wanted = [code for code in codes if self._per_code.get(code, 0) < self.PER_CODE]
        if self._seen > self.FIRST and not wanted:
            return
        for code in wanted:
            self._per_code[code] = self._per_code.get(code, 0) + 1
        sample = sample_from(source, outcome)
        sample.seq = self._seen - 1
        self.samples.append(sample)
        if self.path is not None:
            self.save(self.path)

    def save(self, path: Path) -> None:
        data = {"samples": [sample.model_dump(mode="json") for sample in self.samples]}
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(data, ensure_ascii=False) + "\n", "utf-8")
        temporary.replace(path)


SAMPLES_FILE = "samples.json"


def sampler(
    job_dir: Path | None,
) -> Callable[[SourceConversation | None, PlanOutcome], None] | None:
    """An observer sampling into the job directory's `samples.json` (None without one)."""
    return None if job_dir is None else SampleCollector(job_dir / SAMPLES_FILE).observe


def run_samples(store: StateStore, job_dir: Path | None) -> list[Sample]:
    """The run's saved samples, each with the status the state store now gives it."""
    path = None if job_dir is None else job_dir / SAMPLES_FILE
    if path is None or not path.exists():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
        samples = [Sample.model_validate(row) for row in data["samples"]]
    except (ValueError, KeyError, TypeError):  # a file cut short by a kill: no samples
        return []
    known = store.known_count()
    for sample in samples:
        if sample.seq is None or sample.seq >= known:
            continue
        row = store.conversation(sample.seq)
        sample.status = row.status
        if row.status == "failed":
            sample.error_code = row.error_code
            sample.error_message = row.error_message
    return samples
