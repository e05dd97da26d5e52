"""The command line of a `run` (or `sync`), kept in its job directory before anything else.

Loading the SDK, SQLAlchemy and the adapters takes a while (seconds on a loaded machine), and
a job is recorded only after that. So the group writes the verb's arguments into
`invocation.json` in the job directory (one atomic rename) before the verb is imported: a
process killed in between leaves a directory `migrate resume` can start the job from, as it
was given. It imports nothing beyond the standard library and `migrate.errors`.

Decisions worth knowing:

- A run without `--job-dir` gets its default directory here (`jobs/<verb>-<time>`), added to
  the arguments, so the kept command line names the directory it is kept in.
- Passwords in URLs are masked before the arguments are written (`scheme://user:***@host`);
  the API keys come from the environment only, so they are never among them. `resume` puts
  `--state` back from its own `--state`; a source URL's password cannot be put back.
- A job directory that already holds a job (`job.json`) gets no invocation: `resume` resumes
  that job. A verb that ends without recording its job (a usage error, a refusal) removes the
  file again (and the directory, if it made it and it is empty): only a kill leaves one.
- The arguments are kept as given, with the directory they were given in: `resume` runs them
  from there, so relative paths mean what they meant.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrate.errors import without_passwords

INVOCATION_FILE = "invocation.json"
RECORDED_VERBS = ("run", "sync")
_JOB_FILE = "job.json"
"""`migrate.jobs.directory.JOB_FILE`, not imported: that module loads SQLAlchemy."""
_HELP_FLAGS = ("-h", "--help")


@dataclass(frozen=True)
class Invocation:
    """A `run` or `sync` as it was given: verb, arguments (passwords masked), directory."""

    verb: str
    args: list[str]
    cwd: str

    @property
    def masked(self) -> bool:
        """Some argument held a password, which was not kept."""
        return any(":***@" in arg for arg in self.args)


@dataclass(frozen=True)
class Recorded:
    """An invocation just written: where, and whether the directory was made for it."""

    job_dir: Path
    made_dir: bool


def new_job_dir(verb: str) -> Path:
    """A fresh job directory under `./jobs`, named by verb and UTC time."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = Path("jobs") / f"{verb}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path("jobs") / f"{verb}-{stamp}-{suffix}"
    return path


def record_invocation(verb: str, args: list[str]) -> tuple[list[str], Recorded | None]:
    """Write `verb args` into its job directory; returns the arguments to run (with the
    default `--job-dir` added when none was given) and what was written (None: nothing, as
    for `--help` or a directory that holds a job; an unwritable one is left to the verb)."""
    options = args[: args.index("--")] if "--" in args else args
    if any(arg in _HELP_FLAGS for arg in options):
        return args, None
    given = option_value(options, "--job-dir")
    if given is None:
        given = str(new_job_dir(verb))
        args = ["--job-dir", given, *args]
    job_dir = Path(given)
    if (job_dir / _JOB_FILE).exists():
        return args, None
    made_dir = not job_dir.exists()
    content = {
        "verb": verb,
        "args": [without_passwords(arg) for arg in args],
        "cwd": os.getcwd(),
        "recorded_at": time.time(),
    }
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        partial = job_dir / f".{INVOCATION_FILE}.partial"
        partial.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, job_dir / INVOCATION_FILE)
    except OSError:
        return args, None
    return args, Recorded(job_dir=job_dir, made_dir=made_dir)


def forget_if_unrecorded(recorded: Recorded) -> None:
    """After the verb: the invocation goes again if the job was never recorded."""
    if (recorded.job_dir / _JOB_FILE).exists():
        return
    try:
        (recorded.job_dir / INVOCATION_FILE).unlink(missing_ok=True)
        if recorded.made_dir and not any(recorded.job_dir.iterdir()):
            recorded.job_dir.rmdir()
    except OSError:
        pass  # a leftover invocation only lets `resume` start the job again


def read_invocation(job_dir: Path) -> Invocation | None:
    """The invocation kept in `job_dir` (None: there is none, or it is unreadable)."""
    try:
        content: Any = json.loads((job_dir / INVOCATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict):
        return None
    verb, args, cwd = content.get("verb"), content.get("args"), content.get("cwd")
    if verb not in RECORDED_VERBS or not isinstance(args, list) or not isinstance(cwd, str):
        return None
    return Invocation(verb=str(verb), args=[str(arg) for arg in args], cwd=cwd)


def option_value(args: list[str], name: str) -> str | None:
    """The last value given to option `name` (`--name VALUE` or `--name=VALUE`)."""
    value: str | None = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1 :]
    return value


def with_option(args: list[str], name: str, value: str) -> list[str]:
    """`args` with option `name` set to `value` (every earlier value of it replaced)."""
    kept: list[str] = []
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == name and index + 1 < len(args):
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        kept.append(arg)
    return [name, value, *kept]
