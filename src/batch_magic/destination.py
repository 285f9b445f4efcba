"""Where a job's batches were sent, and what to say when that server is not at hand.

A job records the server it sent its batches to (the base URL, and whether it
was a simulator, built into the notebook's process or not) in its record,
never the key. After a kernel restart that record turns "No API key" or
"404 not found" into a message that names the server and what to do: start
the simulator again, set the key, or send the job again with ``--force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .client import BatchClient, in_process_simulator, make_sdk_client
from .errors import ConfigError, MissingAPIKeyError
from .record import SentTo


def without_credentials(url: str) -> str:
    """The URL without any ``user:password@`` part (nothing secret is written down)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def destination_url(base_url: str) -> str:
    """The server part of a base URL, without credentials or a trailing slash."""
    return without_credentials(base_url.rstrip("/"))


#: How the journal's tables name the simulator running in this process, whatever its port
#: (it keeps its batches and files in the journal folder across kernel restarts).
BUILTIN_SIMULATOR = "builtin-simulator"


@dataclass(frozen=True)
class Destination:
    """A server batches go to: the real API, a simulator server, or the built-in simulator."""

    base_url: str
    simulator: bool
    #: A simulator running inside the notebook's own process (``%batch simulator start``).
    builtin: bool = False

    @classmethod
    def of(cls, client: BatchClient) -> Destination:

        simulated = client.is_simulator
        return cls(
            base_url=without_credentials(client.base_url),
            simulator=simulated,
            builtin=simulated and in_process_simulator(client.base_url),
        )

    @classmethod
    def recorded(cls, sent_to: SentTo | None) -> Destination | None:
        """The destination a job's record names (None for a job that recorded none)."""
        if sent_to is None:
            return None
        return cls(sent_to.base_url, sent_to.simulator, sent_to.builtin)

    def record(self) -> SentTo:
        return SentTo(self.base_url, self.simulator, self.builtin)

    @property
    def key(self) -> str:
        """The server as the journal's tables name it (uploads, answers): its URL without
        credentials, or one name for the simulator built into the process, whatever its port."""
        return BUILTIN_SIMULATOR if self.builtin else destination_url(self.base_url)

    def describe(self) -> str:
        if self.builtin:
            return f"the built-in simulator at {self.base_url}"
        if self.simulator:
            return f"a simulator server at {self.base_url}"
        return f"the real API at {self.base_url}"

    def how_to_reach(self) -> str:
        """What a person does to talk to this server again."""
        if self.builtin:
            return (
                "start the simulator again with `%batch simulator start` (it keeps its batches in the "
                "journal folder)"
            )
        if self.simulator:
            return (
                "start that simulator again (`python -m batch_magic.simulator --state DIR`) and point "
                "this session at it (ANTHROPIC_BASE_URL=<its URL>, ANTHROPIC_API_KEY=sk-sim-anything), "
                "or use the built-in one: `%batch simulator start`"
            )
        return "set the API key it was sent with: import os; os.environ['ANTHROPIC_API_KEY'] = 'sk-ant-...'"

    def unreachable(self) -> str:
        """Why this session cannot go on with a job sent here (no client could be made)."""
        if self.builtin:
            return "which is not running in this session (a kernel restart stops it)"
        if self.simulator:
            return "which this session is not pointed at"
        return "and this session has no API key"


def client_for_job(job_id: str, recorded: SentTo | None, client: Any | None) -> BatchClient:
    """The client to go on with job ``job_id``, or an error that says where it was sent and what to do.

    A simulated job is never continued on the real API (which never saw its
    batches), nor a real job on a simulator. A simulator's port may change
    between sessions: any simulator will do for a simulated job.
    """
    sent_to = Destination.recorded(recorded)
    try:
        batch_client = client if isinstance(client, BatchClient) else BatchClient(
            client if client is not None else make_sdk_client()
        )
    except MissingAPIKeyError:
        if sent_to is None:
            raise
        raise MissingAPIKeyError(
            f"Job {job_id} was sent to {sent_to.describe()}, {sent_to.unreachable()}: "
            f"{sent_to.how_to_reach()}. Then run this again."
        ) from None
    if sent_to is not None and sent_to.simulator != batch_client.is_simulator:
        here = Destination.of(batch_client)
        step = "stop this session's simulator (`%batch simulator stop`) and " if here.builtin else ""
        raise ConfigError(
            f"Job {job_id} was sent to {sent_to.describe()}, but this session talks to "
            f"{here.describe()}, which never saw its batches. To go on with it, "
            f"{step}{sent_to.how_to_reach()}; then run this again. Or send it anew to "
            f"{here.describe()} with --force (submit(..., force=True))."
        )
    return batch_client


def batch_gone_message(recorded: SentTo | None, batch_id: str) -> str:
    """The server answered 404 for a batch the job created there."""
    sent_to = Destination.recorded(recorded)
    where = sent_to.describe() if sent_to is not None else "the server it was sent to"
    if sent_to is not None and sent_to.simulator:
        why = "a simulator started afresh, or with another state folder, does not know it"
        cost = ""
    else:
        why = "it was deleted, or it belongs to another API key or workspace"
        cost = " (which pays again)"
    return (
        f"Batch {batch_id} is gone from {where}: {why}. Its results cannot be fetched. "
        f"Run the cell again with --force to send the job again{cost}; "
        "from Python: batch_magic.submit(..., force=True)."
    )


__all__ = ["Destination", "batch_gone_message", "client_for_job", "without_credentials"]
