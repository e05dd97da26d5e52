"""`report.html` for a large plan: its size and the time it takes to write, next to the plan's.

    .venv/bin/python bench/report_html.py [--conversations 1000000] [--workdir DIR] [--json]

Generates a seeded Chat Completions JSONL source of short conversations (1 to 6 messages), with
findings (unanswered tool calls, author names) and errors (unknown roles, malformed lines) in a
few percent of them, so the page has codes, examples and viewer samples to show. Then runs
`migrate.jobs.plan.plan_job` on it once, timing the whole plan and, inside it, the writing of
`report.html` (`write_report_html`, the Jinja2 render and the file). A second plan with the
report's aggregation switched off measures what gathering the aggregates costs the plan.

Targets: `report.html` under 2 MB, and written in under 10% of the plan's own time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python bench/...py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import migrate.jobs.plan
from adapters.config import JsonSourceConfig
from migrate.config import JobConfig
from migrate.jobs.plan import plan_job

SIZE_TARGET = 2_000_000
TIME_SHARE_TARGET = 0.10


def write_source(path: Path, conversations: int, *, seed: int) -> None:
    rng = random.Random(f"report-html:{seed}")
    with path.open("w", encoding="utf-8") as out:
        for number in range(conversations):
            draw = rng.random()
            if draw < 0.002:
                out.write('{"id": "broken", "messages": [\n')
                continue
            messages: list[dict[str, Any]] = []
            for turn in range(rng.randint(1, 6)):
                role = "user" if turn % 2 == 0 else "assistant"
                messages.append({"role": role, "content": f"message {turn} of {number}"})
            if draw < 0.01:
                messages[0]["role"] = "bot"
            elif draw < 0.03:
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{number}",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": "{}"},
                            }
                        ],
                    }
                )
            elif draw < 0.05:
                messages[0]["name"] = "alice"
            out.write(json.dumps({"id": f"conv-{number:07d}", "messages": messages}) + "\n")


def _plan(source: Path, job_dir: Path) -> tuple[float, float, int]:
    """Seconds of the whole plan, seconds of writing report.html, and the page's size."""
    spent: list[float] = []
    original = migrate.jobs.plan.write_report_html

    def timed(*args: Any, **kwargs: Any) -> Path:
        began = time.perf_counter()
        path = original(*args, **kwargs)
        spent.append(time.perf_counter() - began)
        return path

    migrate.jobs.plan.write_report_html = timed
    try:
        config = JobConfig(source=JsonSourceConfig(path=source, format="chat_completions"))
        began = time.perf_counter()
        plan_job(config, job_dir)
        total = time.perf_counter() - began
    finally:
        migrate.jobs.plan.write_report_html = original
    return total, sum(spent), (job_dir / "report.html").stat().st_size


def _plan_without_aggregates(source: Path, job_dir: Path) -> float:
    """The same plan with the report's per-conversation aggregation made a no-op."""
    original: Callable[..., Any] = migrate.jobs.plan.PlanReportBuilder.observe
    migrate.jobs.plan.PlanReportBuilder.observe = lambda self, source, outcome: None  # type: ignore[method-assign]
    try:
        config = JobConfig(source=JsonSourceConfig(path=source, format="chat_completions"))
        began = time.perf_counter()
        plan_job(config, job_dir)
        return time.perf_counter() - began
    finally:
        migrate.jobs.plan.PlanReportBuilder.observe = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        source = workdir / "source.jsonl"
        write_source(source, args.conversations, seed=args.seed)
        total, html_seconds, size = _plan(source, workdir / "plan")
        summary = json.loads((workdir / "plan" / "summary.json").read_text("utf-8"))
        bare = _plan_without_aggregates(source, workdir / "plan-bare")
    share = html_seconds / total
    result = {
        "conversations": summary["conversations"],
        "plan_seconds": round(total, 2),
        "report_html_seconds": round(html_seconds, 3),
        "report_html_share_of_plan": round(share, 4),
        "report_html_bytes": size,
        "plan_seconds_without_aggregates": round(bare, 2),
        "aggregation_overhead": round(total / bare - 1, 4),
        "codes": len(summary["report"]["errors"]) + len(summary["report"]["findings"]),
        "samples": summary["report"]["samples"],
        "size_met": size < SIZE_TARGET,
        "time_met": share < TIME_SHARE_TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"plan of {args.conversations:,} conversations: {total:.1f} s")
    print(
        f"report.html: {size / 1e6:.2f} MB (target < 2 MB) "
        f"[{'met' if result['size_met'] else 'NOT MET'}]"
    )
    print(
        f"report.html written in {html_seconds:.3f} s = {share:.2%} of the plan "
        f"(target < 10%) [{'met' if result['time_met'] else 'NOT MET'}]"
    )
    print(
        f"plan without the report's aggregation: {bare:.1f} s "
        f"(aggregation costs {result['aggregation_overhead']:+.1%}; informative)"
    )


if __name__ == "__main__":
    main()
