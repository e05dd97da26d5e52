"""The terminal summary's share of the report: top error and finding codes, where the page is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from migrate.reporting.model import ReportData
from migrate.reporting.render import REPORT_FILE

TOP_CODES = 5


def code_lines(report: ReportData, *, top: int = TOP_CODES) -> list[str]:
    """`errors by code:` and `findings by code:` blocks, most conversations first."""
    lines: list[str] = []
    kinds: tuple[Literal["errors", "findings"], ...] = ("errors", "findings")
    for kind in kinds:
        rows = getattr(report, kind)
        if not rows:
            lines.append(f"{kind} by code: none")
            continue
        lines.append(f"{kind} by code:")
        for row in report.top(kind, top):
            times = "" if row.count == row.conversations else f", {row.count} times"
            lines.append(
                f"  {row.code:28} {row.conversations} conversation(s) ({row.share:.1f}%{times})"
            )
        if len(rows) > top:
            lines.append(f"  ... {len(rows) - top} more code(s) in {REPORT_FILE}")
    return lines


def saved_report(job_dir: Path | None) -> ReportData | None:
    """The `report` section of the job directory's `summary.json`, if it has one."""
    if job_dir is None:
        return None
    try:
        data = json.loads((job_dir / "summary.json").read_text("utf-8"))
        return ReportData.model_validate(data["report"])
    except (OSError, ValueError, KeyError, ValidationError):
        return None


def page_line(job_dir: Path | str, *, label: str = "report.html:", width: int = 18) -> str:
    """Where the page is, aligned like the summary lines above it."""
    return f"{label:{width}}{Path(job_dir) / REPORT_FILE}"
