"""The exception tree of batch_magic.

Library code raises these plain exceptions; the one boundary that talks to a
person (``magics.py``) turns them into short messages without a traceback.
Every message says what failed, quotes the offending value and says what to do.
"""

from __future__ import annotations

from typing import Any


def quote(value: Any, limit: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BatchMagicError(Exception):
    """Base class of every error batch_magic raises on purpose."""


class TemplateError(BatchMagicError):
    """The prompt template does not compile or names something that is not there."""


class PlanError(BatchMagicError):
    """The DataFrame and options cannot be turned into valid requests."""


class ConfigError(BatchMagicError):
    """An option or configuration value is invalid."""


class ModelNotUsableError(ConfigError):
    """The model is unknown to the API, retired, or takes no batches (nothing was sent)."""


class MissingAPIKeyError(ConfigError):
    """No API key was found and no simulator was asked for."""


class BudgetExceededError(BatchMagicError):
    """The cost estimate is over the budget the user set (nothing was sent)."""


class JournalError(BatchMagicError):
    """The on-disk journal is missing, unreadable or does not match."""


class JobNotFoundError(JournalError):
    """No job with that id (or prefix) is in the journal."""


class APIError(BatchMagicError):
    """The API refused a call in a way retrying will not fix."""


class MergeError(BatchMagicError):
    """Results cannot be aligned to the DataFrame; they stay in the journal."""


class MediaError(PlanError):
    """An image or PDF of the DataFrame cannot be sent (missing, unsupported, too large)."""
