"""The report a person reads: `report.html`, the codes' meanings and remedies, reference docs.

- `codes`: the one registry of finding and error codes (meaning, remedy).
- `model`: what the page shows, as data (`summary.json` holds it under `report`).
- `collect`, `build`: the aggregates, gathered while planning or queried from the state store.
- `viewer`: the sampled conversations, source entries beside the items sent.
- `events`: the job log of rate-limit pauses (`events.jsonl`).
- `render`: the page itself (Jinja2, `templates/`); `docs`: the reference pages in `docs/`.
"""

from migrate.reporting.build import DEFAULT_RATE_PER_MINUTE, PlanReportBuilder, run_report
from migrate.reporting.codes import CODES, Code, describe
from migrate.reporting.model import ReportData

__all__ = [
    "CODES",
    "DEFAULT_RATE_PER_MINUTE",
    "Code",
    "PlanReportBuilder",
    "ReportData",
    "describe",
    "run_report",
]
