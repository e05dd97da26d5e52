"""One error tree for the engine; each error knows its exit code and whether it is transient."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
"""The job completed, but some conversations failed."""
EXIT_USAGE = 2
"""Bad command line, job file or configuration."""
EXIT_FAILED = 3
"""The job as a whole failed (target unreachable, state store broken, ...)."""


class MigrateError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = EXIT_FAILED
    transient = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MigrateError):
    """The job's configuration or command line is wrong; nothing was done."""

    exit_code = EXIT_USAGE


class JobError(MigrateError):
    """The job cannot go on at all."""


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
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.conversation_id = conversation_id
        self.location = location
        self.source_id = source_id
