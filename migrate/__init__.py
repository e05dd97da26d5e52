"""Move legacy chat history into the OpenAI Conversations API, exactly once, with a report.

The verbs of the `migrate` command are plain functions here, each taking a config model and
returning a result model (the CLI is a thin layer over them):

    from pathlib import Path
    from migrate import JobConfig, RunConfig, run_job
    from adapters.config import JsonSourceConfig

    config = RunConfig(job=JobConfig(source=JsonSourceConfig(path=Path("chats.jsonl"))),
                       job_dir=Path("jobs/first"))
    summary = run_job(config)

Names are imported on first use, so `import migrate` (and `migrate --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "JobConfig": "migrate.config",
    "Policy": "migrate.transform.policy",
    "TargetConfig": "migrate.replay.target",
    "ReplayOptions": "migrate.replay.options",
    "PlanSummary": "migrate.jobs.plan",
    "plan_job": "migrate.jobs.plan",
    "RunConfig": "migrate.jobs.models",
    "ResumeConfig": "migrate.jobs.models",
    "WorkConfig": "migrate.jobs.models",
    "JobRef": "migrate.jobs.models",
    "JobSummary": "migrate.jobs.models",
    "VerifyReport": "migrate.jobs.models",
    "RollbackResult": "migrate.jobs.models",
    "ProgressUpdate": "migrate.jobs.models",
    "run_job": "migrate.jobs.run",
    "resume_job": "migrate.jobs.run",
    "work_on_job": "migrate.jobs.run",
    "job_status": "migrate.jobs.status",
    "write_report": "migrate.jobs.status",
    "verify_job": "migrate.jobs.verify",
    "rollback_job": "migrate.jobs.rollback",
    "rollback_preview": "migrate.jobs.rollback",
    "MigrateError": "migrate.errors",
    "SyncConfig": "migrate.jobs.models",
    "Subset": "migrate.jobs.models",
    "sync_job": "migrate.jobs.sync",
    "LookupResult": "migrate.state.ledger",
    "lookup_conversations": "migrate.jobs.lookup",
}

__all__ = [
    "JobConfig",
    "JobRef",
    "JobSummary",
    "LookupResult",
    "MigrateError",
    "PlanSummary",
    "Policy",
    "ProgressUpdate",
    "ReplayOptions",
    "ResumeConfig",
    "RollbackResult",
    "RunConfig",
    "Subset",
    "SyncConfig",
    "TargetConfig",
    "VerifyReport",
    "WorkConfig",
    "__version__",
    "job_status",
    "lookup_conversations",
    "plan_job",
    "resume_job",
    "rollback_job",
    "rollback_preview",
    "run_job",
    "sync_job",
    "verify_job",
    "work_on_job",
    "write_report",
]

if TYPE_CHECKING:
    from migrate.config import JobConfig
    from migrate.errors import MigrateError
    from migrate.jobs.lookup import lookup_conversations
    from migrate.jobs.models import (
        JobRef,
        JobSummary,
        ProgressUpdate,
        ResumeConfig,
        RollbackResult,
        RunConfig,
        Subset,
        SyncConfig,
        VerifyReport,
        WorkConfig,
    )
    from migrate.jobs.plan import PlanSummary, plan_job
    from migrate.jobs.rollback import rollback_job, rollback_preview
    from migrate.jobs.run import resume_job, run_job, work_on_job
    from migrate.jobs.status import job_status, write_report
    from migrate.jobs.sync import sync_job
    from migrate.jobs.verify import verify_job
    from migrate.replay.options import ReplayOptions
    from migrate.replay.target import TargetConfig
    from migrate.state.ledger import LookupResult
    from migrate.transform.policy import Policy


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'migrate' has no attribute {name!r}")
