"""Expected failures, each with one line naming the thing and a ``hint`` for the fix.

Every class is a ``ValueError``, so ``except ValueError`` keeps catching them; the CLI prints
``str(err)`` (the message and the hint on one line) and exits with status 2.
"""

from __future__ import annotations


class ReparamError(ValueError):
    """An expected failure: ``message`` names the thing, ``hint`` the fix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class BadArgumentError(ReparamError):
    """A command-line argument or function argument out of its range."""


class RunDirError(ReparamError):
    """The run directory cannot be used as asked."""


class RunLockedError(RunDirError):
    """Another process holds the run directory's lock."""


class RunExistsError(RunDirError):
    """The run directory already holds a run (and neither resume nor overwrite was asked)."""


class WriteError(ReparamError):
    """A file could not be written (read-only folder, permissions, ...); the old one is intact."""


class DiskFullError(WriteError):
    """No space left on the device (``ENOSPC`` / ``EDQUOT``); the old file is intact."""


class CorruptFileError(ReparamError):
    """A run file is truncated, corrupt, or holds non-finite numbers."""


class NonFiniteError(ReparamError):
    """Refused to write NaN / inf weights (the previous file is kept)."""


class IncompatibleRunError(ReparamError):
    """Weights do not fit the model that the run's ``config.json`` describes."""
