"""One error tree for the product; each error knows its exit code and whether it is transient.

Every error the engine raises on purpose derives from `MigrateError`, which carries where it
happened (file and line, or table and key), the conversation and batch concerned, and what to
do next (`hint`). `transient` is a property of the class: a transient error may pass if the
same thing is tried again later (a resume, another call); a terminal one will not.

Adapters cannot import `migrate`: their errors (`adapters.SourceOpenError`, ...) are mapped to
`SourceError` or `SourceReadError` where the engine calls them. The CLI maps the tree to exit
codes in one place (`migrate.cli.MigrateGroup`):

    MigrateError
    ├── ConfigError (2)              bad command line, job file or configuration; nothing done
    │   ├── SourceError              the source cannot be opened
    │   └── TargetRefusedError       preflight: the target is unreachable or refuses the key
    ├── JobError (3)                 the job cannot go on; resume it once the cause is fixed
    │   ├── SourceReadError          the source failed in the middle of a read
    │   ├── StateWriteError          the job's state cannot be written (disk full, read-only)
    │   ├── TargetUnreachableError   the target stopped answering mid-run (transient)
    │   ├── RateLimitedError         429s only for longer than --max-wait (transient)
    │   └── ClaimLostError           (migrate.state.records) this worker lost its claims
    ├── ConversationError            one conversation cannot be migrated; the job goes on
    │   └── RetriesExhaustedError    its retry budget ran out (transient)
    └── CallError                    one target call failed; its class says what may be done
        ├── CallNotApplied           certainly not applied (429, refused): resend (transient)
        │   ├── CallRateLimited      a 429: pacing, never a failure (transient)
        │   └── CallUnreachable      the connection could not be made (transient)
        ├── CallAmbiguous            may have been applied (5xx, lost answer) (transient)
        │   └── CallTimedOut         no answer in time (transient)
        ├── CallRejected             refused (400-class): fail the conversation
        ├── CallNotFound             the conversation does not exist on the target
        └── CallFatal                nothing can succeed (bad key, no quota): stop the job
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

EXIT_OK = 0
EXIT_PARTIAL = 1
"""The job completed, but some conversations failed."""
EXIT_USAGE = 2
"""Bad command line, job file or configuration."""
EXIT_FAILED = 3
"""The job did not finish (target unreachable, source broken, unexpected error, ...)."""


_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^\s'\"]+@")
"""`scheme://user:password@`: the password of a URL, up to the last `@` of the URL."""


def without_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (`scheme://user:***@host`)."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


class MigrateError(Exception):
    """Base of every error the product raises on purpose.

    Its message, hint and location never hold a password: a URL's is masked when they are set.
    """

    exit_code: ClassVar[int] = EXIT_FAILED
    transient: ClassVar[bool] = False
    _MASKED: ClassVar[frozenset[str]] = frozenset({"message", "hint", "location"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._MASKED and isinstance(value, str):
            value = without_passwords(value)
        super().__setattr__(name, value)

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        location: str | None = None,
        conversation_id: str | None = None,
        batch: int | None = None,
    ) -> None:
        super().__init__(without_passwords(message))
        self.message = message
        self.hint = hint
        """What to do next."""
        self.location = location
        """Where in the source: `file:line` or `table[key]`."""
        self.conversation_id = conversation_id
        """The source conversation concerned."""
        self.batch = batch
        """The batch of items concerned (its first planned position)."""

    @property
    def context(self) -> dict[str, Any]:
        """The error's context fields that are set (for logs and reports)."""
        fields = {
            "location": self.location,
            "conversation_id": self.conversation_id,
            "batch": self.batch,
            "hint": self.hint,
        }
        return {key: value for key, value in fields.items() if value is not None}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MigrateError):
    """The job's configuration or command line is wrong; nothing was done."""

    exit_code = EXIT_USAGE


class SourceError(ConfigError):
    """The source cannot be opened (missing file, unknown format, database refused)."""


class TargetRefusedError(ConfigError):
    """Before anything is planned: the target cannot be reached or does not accept the key."""


class JobError(MigrateError):
    """The job cannot go on at all; what was done is kept and `migrate resume` goes on."""


class SourceReadError(JobError):
    """The source failed in the middle of a read (the records before it are planned)."""


class StateWriteError(JobError):
    """The job's state (store, `job.json`, report files) cannot be written: disk full, or a
    read-only file or directory. The write that failed was not recorded, so nothing is lost;
    `fix` says what to free or fix before `migrate resume`."""

    def __init__(self, message: str, *, fix: str) -> None:
        super().__init__(message)
        self.fix = fix
        self.resume_with(None)

    def resume_with(self, where: str | None) -> None:
        """Name the job in the hint (`migrate resume WHERE`)."""
        command = "`migrate resume`" if where is None else f"`migrate resume {where}`"
        self.hint = f"{self.fix}, then continue the job with {command}; nothing is lost"


StateWriteCause = Literal["full", "read-only"]
"""Why the job's state cannot be written: the disk is full, or a file is read-only."""
_UNWRITABLE_ERRNOS: dict[int, StateWriteCause] = {
    errno.ENOSPC: "full",
    errno.EDQUOT: "full",
    errno.EROFS: "read-only",
    errno.EACCES: "read-only",
    errno.EPERM: "read-only",
}


def state_write_error(cause: StateWriteCause, where: str, detail: str) -> StateWriteError:
    """The error for `where` (a file, or the store's URL without its password)."""
    if cause == "full":
        return StateWriteError(
            f"the job's state cannot be written: {where} is full ({detail})",
            fix=f"free space on the disk (or database server) that holds {where}",
        )
    return StateWriteError(
        f"the job's state cannot be written: {where} is read-only ({detail})",
        fix=f"make {where} (and its directory) writable for this user",
    )


@contextlib.contextmanager
def files_written(what: str) -> Iterator[None]:
    """Write the job's files (`what` names them) with a full disk or read-only directory
    raised as `StateWriteError`."""
    try:
        yield
    except OSError as exc:
        cause = _UNWRITABLE_ERRNOS.get(exc.errno or 0)
        if cause is None:
            raise
        where = exc.filename if isinstance(exc.filename, str) else what
        raise state_write_error(cause, where, exc.strerror or str(exc)) from exc


class TargetUnreachableError(JobError):
    """The target answered no call for longer than the job waits; resume when it is back."""

    transient = True


class RateLimitedError(JobError):
    """The target answered nothing but 429s for longer than the job waits (`--max-wait`)."""

    transient = True


class ConversationError(MigrateError):
    """One conversation cannot be migrated; the job records it and goes on with the rest."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        conversation_id: str | None = None,
        location: str | None = None,
        source_id: str | None = None,
        batch: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message, hint=hint, location=location, conversation_id=conversation_id, batch=batch
        )
        self.code = code
        self.source_id = source_id
        """The source item concerned, when one is."""


class RetriesExhaustedError(ConversationError):
    """The conversation's retry budget ran out; `migrate resume` tries it again."""

    transient = True


FailureKind = Literal["not_applied", "ambiguous", "rejected", "not_found", "fatal"]


class CallError(MigrateError):
    """A target call failed; the subclass (and its `kind`) says what the replayer may do."""

    kind: ClassVar[FailureKind] = "ambiguous"
    no_answer: ClassVar[bool] = False
    """The target gave no answer at all (refused connection, timeout): it may be down."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.target_silent = False
        """Set by the target: no other call got an answer while this one was out."""
        self.api_shaped = False
        """The answer carried an API error object (`{"error": {"message": ...}}`), so it came
        from a Conversations API and not from a proxy or another server at that URL."""


class CallNotApplied(CallError):
    """The write certainly did not happen (429, connection refused): resend it."""

    kind = "not_applied"
    transient = True


class CallRateLimited(CallNotApplied):
    """A 429: the account is busy. The job slows down; no conversation spends a retry on it."""


class CallUnreachable(CallNotApplied):
    """The connection could not be made."""

    no_answer = True


class CallAmbiguous(CallError):
    """The write may or may not have happened (5xx, lost answer): reconcile before resending."""

    kind = "ambiguous"
    transient = True


class CallTimedOut(CallAmbiguous):
    """No answer within the timeout."""

    no_answer = True


class CallRejected(CallError):
    """The target refused the request (400-class): fail the conversation."""

    kind = "rejected"


class CallNotFound(CallError):
    """The conversation does not exist on the target."""

    kind = "not_found"


class CallFatal(CallError):
    """Nothing can succeed (bad key, no quota): stop the job."""

    kind = "fatal"
