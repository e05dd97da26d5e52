"""Sync: migrate only what the state store's ledger does not hold yet.

`sync_job` is a run planned against the ledger (`migrate.jobs.delta.sync_outcomes`): new source
conversations are created, grown ones get only their new items appended to the conversation
that already holds the rest, unchanged ones are counted `up_to_date`, and diverged ones (an
item that already landed changed or vanished) follow the `diverged` policy. It is resumed,
joined by workers and verified like any run. Its job directory may be the one of the job
before it (same state store, same local target); that job's report files move to
`previous/<job id>/` there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from migrate.jobs.models import JobSummary, ProgressCallback, SyncConfig
from migrate.jobs.run import start_job
from migrate.replay.options import CrashHook


def sync_job(
    config: SyncConfig,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    crash_hook: CrashHook | None = None,
    on_ready: Callable[[Path], object] | None = None,
) -> JobSummary:
    """Bring what is new in the source across; returns the job's summary (as `run_job`)."""
    return start_job(
        config,
        diverged=config.diverged,
        progress=progress,
        stop=stop,
        crash_hook=crash_hook,
        on_ready=on_ready,
    )
