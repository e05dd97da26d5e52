"""What the CLI shows and logs: terminal level, log files, progress bars, errors and exit codes.

The library only logs through `logging.getLogger(__name__)` and reports progress through
callbacks; this module is the one place that configures handlers and decides exit codes.

- The terminal gets warnings (`-v`: info, `-vv`: debug, `--quiet`: errors only).
- A job's directory gets `job.log`: JSON Lines, one object per event (session start and end,
  retries, reconciliations, 429 pauses, failures), with conversation and source ids. Messages
  never hold a secret: URLs are shown without their password, keys never appear.
- `--log-file PATH` adds another JSON Lines file.
- An unexpected exception exits 3 with one line naming the log file that holds its traceback
  (the job's log, `--log-file`, or a `migrate-*.log` in the temporary directory); `--debug`
  prints the traceback on the terminal too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from migrate.errors import EXIT_FAILED, EXIT_OK, MigrateError, files_written, without_passwords

JOB_LOG = "job.log"
LOGGERS = ("migrate", "adapters")
"""The product's loggers; handlers go on these, never on the root logger."""
_RECORD_FIELDS = set(vars(logging.makeLogRecord({})))


@dataclass
class Output:
    """The output switches of one invocation (every verb takes them)."""

    verbosity: int = 0
    quiet: bool = False
    progress: bool | None = None
    """None: bars when stderr is a terminal."""
    debug: bool = False
    log_file: Path | None = None

    @property
    def bars_disabled(self) -> bool | None:
        """tqdm's `disable`: True (off), False (forced on) or None (on a terminal only)."""
        if self.quiet:
            return True
        return None if self.progress is None else not self.progress


_output = Output()
_file_handlers: dict[Path, logging.Handler] = {}


def output() -> Output:
    """The switches of the running invocation."""
    return _output


def progress_bar(**options: Any) -> tqdm[Any]:
    """A tqdm bar on stderr that obeys `--progress/--no-progress` and `--quiet`."""
    return tqdm(file=sys.stderr, disable=_output.bars_disabled, dynamic_ncols=True, **options)


def bars_shown() -> bool:
    """Whether `progress_bar` draws (so that a bar's total is worth learning)."""
    disabled = _output.bars_disabled
    return not disabled if disabled is not None else sys.stderr.isatty()


def info(message: str) -> None:
    """A line for people on stderr (not with `--quiet`)."""
    if not _output.quiet:
        click.echo(message, err=True)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "message": without_passwords(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                shown = value if isinstance(value, int | float | bool) else str(value)
                entry[key] = without_passwords(shown) if isinstance(shown, str) else shown
        if record.exc_info:
            entry["traceback"] = without_passwords(
                "".join(traceback.format_exception(*record.exc_info))
            )
        return json.dumps(entry, ensure_ascii=False)


class _TerminalHandler(logging.Handler):
    """Log lines on stderr that do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(f"migrate: {without_passwords(record.getMessage())}", file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def configure(settings: Output) -> None:
    """Install the terminal handler (and `--log-file`) for this invocation."""
    global _output
    _output = settings
    level = (
        logging.ERROR
        if settings.quiet
        else (logging.WARNING, logging.INFO, logging.DEBUG)[min(settings.verbosity, 2)]
    )
    terminal = _TerminalHandler(level=level)
    terminal.set_name("migrate-terminal")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if handler.get_name() == "migrate-terminal":
                logger.removeHandler(handler)
        logger.addHandler(terminal)
        logger.setLevel(logging.DEBUG if settings.verbosity >= 2 else logging.INFO)
    for handler in _file_handlers.values():
        _detach(handler)
    _file_handlers.clear()
    if settings.log_file is not None:
        add_log_file(settings.log_file)


def add_log_file(path: Path) -> Path:
    """Write the product's log records to `path` as JSON Lines (appending); returns the path."""
    path = path.absolute()
    if path in _file_handlers:
        return path
    with files_written(str(path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG if _output.verbosity >= 2 else logging.INFO)
    handler.setFormatter(JsonLinesFormatter())
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
    _file_handlers[path] = handler
    return path


def job_log(job_dir: Path) -> Path:
    """Log this invocation into the job's `job.log` too."""
    return add_log_file(job_dir / JOB_LOG)


def close_logs() -> None:
    """Detach and close the file handlers (end of an invocation)."""
    for handler in _file_handlers.values():
        _detach(handler)
    _file_handlers.clear()


def _detach(handler: logging.Handler) -> None:
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
    handler.close()


def log_files() -> list[Path]:
    return list(_file_handlers)


def exit_code_for(error: BaseException) -> int:
    """The one mapping from what happened to the process's exit code; prints the reason.

    `MigrateError`: its class's code and its message (with what to do next). Anything else is
    unexpected: exit 3 with one line naming the file that holds the traceback.
    """
    if isinstance(error, MigrateError):
        click.echo(f"error: {error}", err=True)
        logging.getLogger("migrate").debug(
            "error: %s", error, extra={"event": "error", **error.context}, exc_info=error
        )
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return EXIT_FAILED
    logger = logging.getLogger("migrate")
    files = log_files()
    if not files:
        handle, name = tempfile.mkstemp(prefix="migrate-", suffix=".log")
        os.close(handle)
        files = [add_log_file(Path(name))]
    logger.error(
        "unexpected error: %s: %s",
        type(error).__name__,
        error,
        extra={"event": "unexpected_error"},
        exc_info=error,
    )
    click.echo(
        without_passwords(
            f"error: unexpected {type(error).__name__}: {error} (the traceback is in "
            f"{files[0]}; --debug prints it here)"
        ),
        err=True,
    )
    if _output.debug:
        click.echo(without_passwords("".join(traceback.format_exception(error))), err=True)
    return EXIT_FAILED


def exit_code_of(result: Any) -> int:
    """A verb's return value as an exit code: an int, an object with `exit_code`, or 0."""
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    code = getattr(result, "exit_code", None)
    return code if isinstance(code, int) else EXIT_OK


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """An option callback keeping the value in the invocation's `Output` (when given)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        settings = ctx.find_root().meta.setdefault("migrate.output", Output())
        given = value is not None if field == "progress" else bool(value)
        if given:
            setattr(settings, field, value)

    return callback


OUTPUT_OPTIONS: list[Callable[[], click.Option]] = [
    lambda: click.Option(
        ["-v", "--verbose", "verbosity"],
        count=True,
        expose_value=False,
        callback=_store("verbosity"),
        help="More on the terminal: -v info, -vv debug.",
    ),
    lambda: click.Option(
        ["--quiet", "-q"],
        is_flag=True,
        expose_value=False,
        callback=_store("quiet"),
        help="Print only errors and the result.",
    ),
    lambda: click.Option(
        ["--progress/--no-progress"],
        default=None,
        expose_value=False,
        callback=_store("progress"),
        help="Force progress bars on or off (default: on when stderr is a terminal).",
    ),
    lambda: click.Option(
        ["--log-file"],
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_store("log_file"),
        help="Also write the log (JSON Lines) to this file.",
    ),
    lambda: click.Option(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        callback=_store("debug"),
        help="Print tracebacks of unexpected errors on the terminal.",
    ),
]


def settings_of(ctx: click.Context) -> Output:
    settings = ctx.find_root().meta.get("migrate.output")
    return settings if isinstance(settings, Output) else Output()
