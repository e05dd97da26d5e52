"""What the job verbs print: summaries, verify and rollback results, progress bars."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from migrate.cli.output import info, progress_bar
from migrate.jobs.directory import shown_url
from migrate.jobs.files import existing_report
from migrate.jobs.models import JobSummary, ProgressUpdate, RollbackResult, VerifyReport
from migrate.plan.pipeline import SkippedFiles
from migrate.reporting.terminal import code_lines, page_line, saved_report

SHOWN_PROBLEMS = 20


# --- rendering ---------------------------------------------------------------------------------


def render_summary(summary: JobSummary) -> str:
    """The human-readable job summary."""
    counts = summary.conversations
    unfinished = ""
    if counts.pending or counts.in_progress:
        unfinished = f", {counts.pending} pending, {counts.in_progress} in progress"
    if not summary.planning_complete:
        unfinished += " (source not fully read yet)"
    state = summary.state
    if summary.process_gone_since is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(summary.process_gone_since))
        state = f"{state} (process gone since {when})"
    if counts.up_to_date or counts.diverged:
        unfinished += f" ({counts.up_to_date} up to date, {counts.diverged} diverged)"
    return "\n".join(
        [
            f"job:              {summary.job_id} ({state})",
            f"source:           {summary.source}",
            f"target:           {summary.target}",
            f"conversations:    {counts.total} total: {counts.migrated} migrated, "
            f"{counts.failed} failed, {counts.skipped} skipped{unfinished}",
            f"items:            {summary.items.landed} landed of {summary.items.planned} planned"
            + (
                f" ({summary.items.unread_ids} item ids unread: `migrate verify` reads them)"
                if summary.items.unread_ids
                else ""
            ),
            f"API calls:        {summary.calls} ({summary.retries} retries, "
            f"{summary.reconciliations} reconciliations)",
            f"possible orphans: {summary.possible_orphans}"
            + (
                f" empty, {summary.possible_orphans_with_items} with items"
                if summary.possible_orphans_with_items
                else ""
            ),
            f"late writes:      {summary.late_writes_repaired} item(s) repaired",
            *(
                [f"metadata updated: {summary.metadata_updates} conversation(s)"]
                if summary.metadata_updates
                else []
            ),
            *skipped_file_lines(summary.skipped_files, label="skipped files:", width=18),
            f"findings:         {summary.findings}",
            *([f"deleted:          {summary.deleted}"] if summary.deleted else []),
            f"elapsed:          {summary.elapsed:.1f} s",
        ]
    )


SHOWN_SKIPPED = 10


def skipped_file_lines(skipped: SkippedFiles, *, label: str, width: int) -> list[str]:
    """The files a source skipped, the first few by name with their reasons."""
    if not skipped.count:
        return []
    lines = [f"{label:<{width}}{skipped.count} (not read: they hold no conversations)"]
    lines += [f"  {file.path}: {file.reason}" for file in skipped.files[:SHOWN_SKIPPED]]
    if skipped.count > SHOWN_SKIPPED:
        lines.append(f"  ... {skipped.count - SHOWN_SKIPPED} more (summary.json lists them)")
    return lines


def render_verify(report: VerifyReport) -> str:
    """The human-readable verification result."""
    lines = [
        f"target:      {report.target}",
        f"checked:     {report.checked} migrated conversation(s)",
        f"matching:    {report.matching}",
        f"differing:   {report.differing}",
    ]
    if report.not_migrated:
        lines.append(f"not checked: {report.not_migrated} not yet migrated")
    if report.repaired:
        lines.append(
            f"repaired:    {report.repaired} item(s) in {report.repaired_conversations} "
            "conversation(s) (surplus copies deleted, missing items appended)"
        )
    for check in report.conversations[:SHOWN_PROBLEMS]:
        source = check.source_id or "(no source id)"
        lines.append(
            f"  {check.location} {source} -> {check.target_conversation_id or '(no id)'}: "
            f"{check.found} items, {check.planned} planned"
        )
        lines += [f"    {problem.kind}: {problem.detail}" for problem in check.problems[:10]]
    if report.differing > SHOWN_PROBLEMS:
        lines.append(f"  ... {report.differing - SHOWN_PROBLEMS} more (use --json)")
    tokens = report.tokens
    if tokens is not None:
        lines.append(
            f"tokens:      {tokens.checked} counted by the target for {tokens.model}: "
            f"{tokens.exact_total:,} exact, {tokens.estimate_total:,} estimated; "
            f"{tokens.exact_matches} exact match(es), largest difference {tokens.max_difference:,} "
            f"({tokens.max_relative_difference:.2%})"
        )
        lines += [
            f"  {d.source_id} -> {d.conversation_id}: estimate {d.estimate:,}, exact {d.exact:,}"
            for d in tokens.differing[:SHOWN_PROBLEMS]
        ]
    return "\n".join(lines)


def render_rollback(result: RollbackResult) -> str:
    """The human-readable rollback result."""
    lines = [
        f"target:       {result.target}",
        f"deleted:      {result.deleted}",
        f"already gone: {result.already_gone}",
        f"log:          {result.log}",
    ]
    if result.possible_orphans:
        lines.append(
            f"not deletable: {result.possible_orphans} possible orphan(s) (empty conversations "
            "whose ids never reached the job)"
        )
    if result.possible_orphans_with_items:
        lines.append(
            f"not deletable: {result.possible_orphans_with_items} possible orphan(s) holding "
            "the first batch a create carried (their ids never reached the job)"
        )
    lines += [f"failed: {failure}" for failure in result.failed]
    return "\n".join(lines)


def show_summary(summary: JobSummary, *, as_json: bool = False) -> JobSummary:
    """Print the final summary (or, with `as_json`, exactly one JSON object on stdout)."""
    if as_json:
        click.echo(summary.model_dump_json())
        if not summary.complete:
            where = summary.job_dir or f"--state URL --job {summary.job_id}"
            info(f"the job is not finished; continue it with: migrate resume {where}")
        return summary
    click.echo(render_summary(summary))
    if summary.job_dir is not None:
        saved = saved_report(Path(summary.job_dir))
        if saved is not None:
            click.echo("\n".join(code_lines(saved)))
            click.echo(page_line(summary.job_dir))
        job_dir = Path(summary.job_dir)
        names = ("conversations.csv", "items.csv", "findings.jsonl", "errors.jsonl")
        written = [found.name for name in names if (found := existing_report(job_dir, name))]
        click.echo(f"report:           {job_dir}/ ({', '.join([*written, 'summary.json'])})")
        errors = existing_report(job_dir, "errors.jsonl")
        if summary.conversations.failed and errors is not None:
            click.echo(f"why each failed conversation failed: {errors}")
    if not summary.complete:
        where = summary.job_dir or f"--state URL --job {summary.job_id}"
        click.echo(f"the job is not finished; continue it with: migrate resume {where}", err=True)
    return summary


class ProgressBars:
    """Two tqdm bars on stderr: conversations and items, with rates and ETAs."""

    def __init__(self, state_url: str | None = None, *, expected: int | None = None) -> None:
        """`expected`: the conversations the job will take, if known before the source is
        read (the total of the bar while planning is still under way)."""
        self.conversations: tqdm[Any] | None = None
        self.items: tqdm[Any] | None = None
        self.state_url = state_url
        self.expected = expected

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *_: object) -> None:
        for bar in (self.conversations, self.items):
            if bar is not None:
                bar.close()

    def update(self, progress: ProgressUpdate) -> None:
        if progress.event == "started":
            info(f"target: {progress.target}")
            if self.state_url is not None and progress.job_id is not None:
                info(
                    f"job id: {progress.job_id}; add workers with: migrate work "
                    f"--state {shown_url(self.state_url)} --job {progress.job_id}"
                )
        if self.conversations is None or self.items is None:
            self.conversations = progress_bar(desc="conversations", unit=" conv", position=0)
            self.items = progress_bar(desc="items", unit=" item", position=1)
        total = progress.conversations_known
        if not progress.planning_complete and self.expected is not None:
            total = max(total, self.expected)
        _advance(self.conversations, progress.conversations_done, total)
        _advance(self.items, progress.items_landed, progress.items_planned)
        pace = []
        if progress.rate_limit is not None:
            pace.append(f"limit {progress.rate_limit:.1f}/s")
        if progress.waiting_429:
            pace.append(f"429 wait {progress.waiting_429:.0f}s")
        self.conversations.set_postfix_str(", ".join(pace), refresh=False)


def _advance(bar: tqdm[Any], value: int, total: int) -> None:
    if bar.total != total:
        bar.total = total
        bar.refresh()
    if value > bar.n:
        bar.update(value - bar.n)
