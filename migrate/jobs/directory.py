"""The job directory and the state store behind it: `job.json`, `state.db`, secret-free records."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from migrate.errors import ConfigError, JobError
from migrate.jobs.models import JobRef
from migrate.replay.target import (
    TargetConfig,
    resolve_base_url,
)
from migrate.state.records import NoJobError
from migrate.state.store import StateStore

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
STATE_FILE = "state.db"


def open_job(ref: JobRef) -> StateStore:
    """Open the state store of an existing job (by its directory, or by store URL and job id)."""
    if ref.job_dir is None:
        if ref.state_url is None or ref.job_id is None:
            raise ConfigError(
                "name the job: its directory, or --state URL and --job JOB_ID",
                hint="`migrate status` on the machine that ran it shows the job id",
            )
        return _checked(StateStore.from_url(ref.state_url), ref.job_id, ref.state_url)
    job_file = ref.job_dir / JOB_FILE
    recorded: dict[str, Any] = {}
    if job_file.exists():
        try:
            recorded = json.loads(job_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {job_file}: {exc}") from exc
    elif ref.state_url is None and not (ref.job_dir / STATE_FILE).exists():
        why = f"no {JOB_FILE}, no {STATE_FILE}" if ref.job_dir.exists() else "it does not exist"
        raise _no_job(ref.job_dir, why)
    url = ref.state_url
    if url is None:
        stored = recorded.get("state_url")
        if stored is None:
            url = default_state_url(ref.job_dir)
        elif "***" in stored:
            raise ConfigError(
                f"the job's state store URL needs its password: {stored}",
                hint="pass --state (or set MIGRATE_STATE_URL)",
            )
        else:
            url = stored
    try:
        store = StateStore.from_url(url)
    except NoJobError as exc:
        if ref.state_url is None and "job_id" not in recorded:
            raise _no_job(ref.job_dir, f"its {STATE_FILE} holds none") from exc
        raise
    try:
        held = store.job().job_id
    except NoJobError as exc:
        store.close()
        if ref.state_url is None and "job_id" not in recorded:
            raise _no_job(ref.job_dir, f"its {STATE_FILE} holds none") from exc
        raise
    # A run killed before it wrote job.json still has its job in the default store.
    if "job_id" in recorded and held != recorded["job_id"]:
        store.close()
        raise ConfigError(
            f"the state store at {shown_url(url)} holds another job than {ref.job_dir}"
        )
    return store if ref.job_id is None else _checked(store, ref.job_id, url)


def _no_job(job_dir: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{job_dir} holds no job ({why})",
        hint="a run killed before it recorded its job leaves this, and sent nothing: start it "
        f"again with `migrate run SOURCE --job-dir {job_dir}` (a run given --state records its "
        "job there: resume with the same --state)",
    )


def _checked(store: StateStore, job_id: str, url: str) -> StateStore:
    """The store, if it holds job `job_id`."""
    try:
        held = store.job().job_id
    except JobError:
        store.close()
        raise
    if held != job_id:
        store.close()
        raise ConfigError(f"the state store at {shown_url(url)} holds job {held}, not {job_id}")
    return store


def job_name(ref: JobRef) -> str:
    return str(ref.job_dir) if ref.job_dir is not None else f"job {ref.job_id}"


def write_job_file(job_dir: Path, job_id: str, state_url: str | None) -> None:
    """Write `job.json` whole or not at all (a kill mid-write leaves no torn file)."""
    content = {"job_id": job_id, "state_url": shown_url(state_url) if state_url else None}
    partial = job_dir / f".{JOB_FILE}.partial"
    partial.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, job_dir / JOB_FILE)


def recorded_state_url(job_dir: Path) -> str | None:
    """The state store URL `job.json` names (None: the directory's own `state.db`)."""
    try:
        recorded = json.loads((job_dir / JOB_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {job_dir / JOB_FILE}: {exc}") from exc
    stored = recorded.get("state_url")
    if isinstance(stored, str) and "***" in stored:
        raise ConfigError(
            f"the job's state store URL needs its password: {stored}",
            hint="pass --state (or set MIGRATE_STATE_URL)",
        )
    return stored if isinstance(stored, str) else None


_TABLES = (
    "conversations.csv",
    "conversations.jsonl",
    "items.csv",
    "items.jsonl",
    "findings.jsonl",
    "errors.jsonl",
)
REPORT_FILES = (
    *_TABLES,
    *(f"{name}.gz" for name in _TABLES),
    "summary.json",
    "rollback.jsonl",
)


def archive_report_files(job_dir: Path, job_id: str) -> Path:
    """Move a finished job's report files to `<job_dir>/previous/<job_id>/` (a new job starts)."""
    archive = job_dir / "previous" / job_id
    archive.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:
        if (job_dir / name).exists():
            (job_dir / name).replace(archive / name)
    return archive


def default_state_url(job_dir: Path) -> str:
    return f"sqlite:///{(job_dir / STATE_FILE).resolve()}"


def shown_url(url: str) -> str:
    """A database URL fit to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def pinned_target(config: TargetConfig) -> TargetConfig:
    """The target with its base URL fixed, so that `resume` writes where `run` wrote."""
    if config.kind == "openai":
        return config.model_copy(update={"base_url": resolve_base_url(config)})
    return config


def clean_target(store: StateStore) -> TargetConfig:
    """The job's target without rehearsal faults (for reading back and deleting)."""
    return with_server_options(TargetConfig.model_validate(store.job().target), {})


def with_server_options(target: TargetConfig, options: dict[str, Any]) -> TargetConfig:
    """The target with new rehearsal switches; its flavour (what API it speaks) is kept."""
    kept = {k: v for k, v in target.server_options.items() if k == "flavour"}
    return target.model_copy(update={"server_options": {**kept, **options}})


def secret_free(data: dict[str, Any]) -> dict[str, Any]:
    """The job config with any password in a database URL masked."""
    source = data.get("source")
    if isinstance(source, dict) and isinstance(source.get("url"), str):
        source["url"] = shown_url(source["url"])
    return data
