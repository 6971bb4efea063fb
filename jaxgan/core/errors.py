"""Errors a user can cause and fix: the command-line entry points print their message, no traceback.

Each subclasses the built-in error it refines (a bad config value is still a `ValueError`, missing
data still a `FileNotFoundError`), so library callers that catch those keep working; `main` and
`evaluate` catch `UserError` alone, so a bug anywhere else still shows its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message names the input, what is wrong with it, and what to do."""


class ConfigError(UserError, ValueError):
    """A config field has a value this code cannot run, or one a resumed run may not change."""


class DataError(UserError, FileNotFoundError):
    """A dataset is missing or unreadable."""


class CheckpointError(UserError, OSError):
    """No checkpoint of a run could be read (each unreadable one was named and moved aside)."""


class NonFiniteError(UserError, FloatingPointError):
    """Training produced a non-finite value; the message names the step, the quantity and a good
    checkpoint to resume from."""
