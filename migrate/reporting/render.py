"""`report.html`: one self-contained page (inline CSS and SVG, no script, no network).

Rendered with Jinja2 from `templates/report.html.j2`. Every number on the page is printed by
`num`, which wraps it in `<span data-n="path">` naming its place in `summary.json`; text that
comes from the data (ids, locations, messages, codes) is marked `data-free`. A test reads the
page back and checks each number against the summary.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from migrate.reporting.viewer import Sample

REPORT_FILE = "report.html"


def format_number(value: Any, style: str = "int") -> str:
    """How the page prints a number of the given style (the test uses the same rules)."""
    if value is None:
        return "none"
    match style:
        case "int":
            return f"{int(value):,}"
        case "pct":
            return f"{float(value):.1f}%"
        case "s":
            return f"{float(value):,.1f} s"
        case "min":
            return f"{float(value):,.1f} min"
        case "mb":
            return f"{float(value) / 1e6:,.1f} MB"
        case "rate":
            return f"{float(value):,.2f}/s"
        case "time":
            return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        case _:
            raise ValueError(f"unknown number style {style!r}")


def _num(value: Any, path: str, style: str = "int") -> Markup:
    return Markup('<span class="n" data-n="{}" data-style="{}">{}</span>').format(
        path, style, format_number(value, style)
    )


def _ticks(value: str) -> Markup:
    """Free text whose `backticked` words are shown as code."""
    parts = str(escape(value)).split("`")
    html = "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    return Markup('<span data-free="">{}</span>').format(Markup(html))


def _free(value: Any) -> Markup:
    return Markup('<span data-free="">{}</span>').format("" if value is None else value)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("migrate.reporting", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(num=_num, free=_free, ticks=_ticks)
    return env


def render_report(summary: dict[str, Any], samples: list[Sample]) -> str:
    """The page for a plan's or a run's `summary.json` (with its `report` section)."""
    report = summary["report"]
    template = _environment().get_template("report.html.j2")
    return template.render(
        s=summary,
        r=report,
        kind=report["kind"],
        samples=[sample.model_dump(mode="json") for sample in samples],
        chart=_chart(report.get("timeline")),
    )


def write_report_html(job_dir: Path, summary: dict[str, Any], samples: list[Sample]) -> Path:
    """Write `report.html` into `job_dir` (atomically); returns its path."""
    path = job_dir / REPORT_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(render_report(summary, samples), "utf-8")
    os.replace(temporary, path)
    return path


CHART_WIDTH = 720
CHART_HEIGHT = 140


def _chart(timeline: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bar geometry for the run's time charts (positions only: the numbers stay in the table)."""
    if not timeline:
        return None
    buckets = timeline["buckets"]
    step = CHART_WIDTH / max(1, len(buckets))

    def bars(key: str, peak: int) -> list[dict[str, float]]:
        out = []
        for index, bucket in enumerate(buckets):
            height = 0.0 if not peak else CHART_HEIGHT * bucket[key] / peak
            out.append(
                {
                    "x": round(index * step + 1, 1),
                    "y": round(CHART_HEIGHT - height, 1),
                    "w": round(max(1.0, step - 2), 1),
                    "h": round(height, 1),
                }
            )
        return out

    trouble = max([max(b["retries"], b["reconciliations"], b["pauses"]) for b in buckets] + [0])
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "conversations": bars("conversations", timeline["peak_conversations"]),
        "items": bars("items", timeline["peak_items"]),
        "retries": bars("retries", trouble),
        "reconciliations": bars("reconciliations", trouble),
        "pauses": bars("pauses", trouble),
    }
