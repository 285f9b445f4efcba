"""The words a job and its rows are shown in, defined once.

The job record's own states (``JobState``, ``BatchState``) live with the record
in the journal; these are what a *display* shows (``DisplayState``) and what a
row's ``{out}_status`` column holds (``RowStatus``). Both are ``StrEnum``s, so a
member compares equal to its word and is written to a column or a table as that
word; no other module spells these words out.

This module imports nothing, so the lightest module (results parsing, the panel)
can name a state without loading anything else.
"""

from __future__ import annotations

from enum import StrEnum


class DisplayState(StrEnum):
    """What a snapshot (``JobStatus.state``) shows."""

    # One per recorded job state (``status.DISPLAY_STATE`` maps them).
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"  # the record says running, and no step says more
    CANCELING = "canceling"
    DONE = "done"
    CANCELED = "canceled"
    FAILED = "failed"
    # The steps a running job shows while it is in one ("uploading" also while the
    # record is still planned: images and PDFs go before the first batch).
    UPLOADING = "uploading"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    COLLECTING = "collecting"
    RETRYING = "retrying"
    MERGING = "merging"


#: The steps a running job shows while it is in one.
RUNNING_STEPS: tuple[DisplayState, ...] = (
    DisplayState.UPLOADING,
    DisplayState.SUBMITTING,
    DisplayState.QUEUED,
    DisplayState.COLLECTING,
    DisplayState.RETRYING,
    DisplayState.MERGING,
)


class RowStatus(StrEnum):
    """A row's outcome, in ``{out}_status`` (a Categorical of these words, in this order)."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    INVALID = "invalid"  # answered, but the answer does not fit the labels or schema
    REFUSED = "refused"  # the model declined (stop_reason "refusal"); never retried
    EXPIRED = "expired"
    CANCELED = "canceled"
    SKIPPED = "skipped"  # its input was missing or blank: nothing to send
    NOT_SENT = "not_sent"  # left out of a sample (--sample): not asked, yet
    PENDING = "pending"  # sent, no result yet


#: Rows a retry sends again.
RETRIABLE_ROW_STATUSES: tuple[RowStatus, ...] = (RowStatus.ERRORED, RowStatus.EXPIRED, RowStatus.INVALID)
