"""How a job is driven: poll intervals, backoff, attempts, the wait after a lost create.

These are not part of a job's fingerprint (changing them never makes a new
job), and they depend on where the batches go: a local simulator answers at
once, so polling it every 0.2 s costs nothing and a create whose answer was
lost shows up within seconds, while the real API is polled gently and given
ten minutes to show a late batch. ``JobSettings.for_destination`` is the one
place that choice is made, for the Python API and the magic alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class JobSettings:
    """How a job is driven (not part of its fingerprint). The defaults are the real API's."""

    #: Total attempts per request, the first included (retriable errors, expiry).
    max_attempts: int = 3
    #: Batches in flight at once across the journal; the rest wait their turn.
    max_in_flight: int = 4
    #: Poll interval: a fraction of the time the batch has run, within bounds,
    #: so a quick batch is seen soon after it ends and a long one costs ~60 calls an hour.
    poll_min: float = 1.0
    poll_max: float = 60.0
    poll_fraction: float = 0.1
    #: Backoff for transient failures (seconds), doubled per failure in a row up to the
    #: max (an outage is not hammered), back to the min after a call that worked.
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    #: After a create whose answer was lost (timeout, dropped connection, 5xx), the
    #: batch may still appear on the server: it is looked for (a listing every
    #: ``create_grace / 60`` s at least) for this long before the create is sent again.
    create_grace: float = 600.0

    @classmethod
    def for_destination(
        cls,
        *,
        local: bool,
        max_attempts: int | None = None,
        max_in_flight: int | None = None,
        poll_min: float | None = None,
        poll_max: float | None = None,
    ) -> JobSettings:
        """The settings for the real API (``local=False``) or a simulator on this machine
        (``local=True``), with the values the user set (None: the destination's own).

        ``poll_max`` is never below ``poll_min``: a user who raises only the shortest
        wait gets that wait, not an error.
        """
        base = LOCAL_SIMULATOR if local else cls()
        poll_min = base.poll_min if poll_min is None else poll_min
        poll_max = base.poll_max if poll_max is None else poll_max
        return replace(
            base,
            max_attempts=base.max_attempts if max_attempts is None else max_attempts,
            max_in_flight=base.max_in_flight if max_in_flight is None else max_in_flight,
            poll_min=poll_min,
            poll_max=max(poll_min, poll_max),
        )


#: A simulator on this machine answers at once; there is no API to spare, and a create
#: whose answer was lost shows up (or not) within seconds.
LOCAL_SIMULATOR = JobSettings(poll_min=0.2, poll_max=5.0, backoff_min=0.2, create_grace=10.0)


def poll_interval(settings: JobSettings, ran_seconds: float) -> float:
    """Seconds until the next poll of a batch that has run ``ran_seconds``: a fraction of
    its age within bounds, so a quick batch is seen soon after it ends and a long one
    costs about 60 calls an hour."""
    return min(settings.poll_max, max(settings.poll_min, ran_seconds * settings.poll_fraction))


__all__ = ["LOCAL_SIMULATOR", "JobSettings", "poll_interval"]
