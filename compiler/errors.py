"""Errors users see. Anything raised as a `RillError` becomes one clear message and an exit code."""
from __future__ import annotations


class RillError(Exception):
    """A problem with the user's model, data or options (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def __str__(self) -> str:
        lines = [self.message] + [f"  - {d}" for d in self.details]
        return "\n".join(lines)


class UsageError(RillError):
    """A wrong command line: unknown option or target, missing file (exit code 2)."""

    exit_code = 2


class VerificationError(RillError):
    """The generated code or the streaming model does not match its reference."""
