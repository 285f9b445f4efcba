"""The in-process simulator: start a server on a daemon thread, configure it, inspect it.

Modelled on pytest-httpserver: binds 127.0.0.1 port 0 by default and reads
its real port back, is a context manager, keeps a request log and can be
reset between tests. A module-level registry of running URLs lets other code
tell that a ``base_url`` is a simulator (:func:`is_simulator_url`).
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

from .app import App, Options
from .clock import Clock, FakeClock, RealClock
from .faults import Fault
from .model import Responder
from .server import RequestRecord, SimHTTPServer

_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _netloc(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if host in _LOOPBACK:
        host = "127.0.0.1"
    return host, port


def is_simulator_url(url: str | None) -> bool:
    """True if ``url`` points at a simulator running in this process."""
    if not url:
        return False
    target = _netloc(str(url))
    with _RUNNING_LOCK:
        return target is not None and any(_netloc(u) == target for u in _RUNNING)


def running_simulators() -> list[str]:
    """Base URLs of the simulators running in this process."""
    with _RUNNING_LOCK:
        return sorted(_RUNNING)


class _Option:
    """A simulator attribute that reads and writes one field of its :class:`Options`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Simulator | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.options, self.name)

    def __set__(self, obj: Simulator, value: Any) -> None:
        obj.configure(**{self.name: value})


class Simulator:
    """A local Message Batches API server.

    >>> with Simulator(processing_time=0) as sim:        # doctest: +SKIP
    ...     client = anthropic.Anthropic(api_key="sk-sim", base_url=sim.url)
    """

    processing_time = _Option()
    per_request_time = _Option()
    speed = _Option()
    cancel_delay = _Option()
    error_rates = _Option()
    expire_rate = _Option()
    seed = _Option()
    retention_days = _Option()
    strict_models = _Option()
    refusal_rate = _Option()
    invalid_rate = _Option()
    responder = _Option()
    api_keys = _Option()
    max_requests = _Option()
    max_body_bytes = _Option()
    cache_min_tokens = _Option()
    max_file_bytes = _Option()
    files_storage_bytes = _Option()

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        clock: Clock | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        verbose: bool = False,
        processing_time: float = 3.0,
        per_request_time: float = 0.0,
        speed: float = 1.0,
        cancel_delay: float = 1.0,
        error_rates: dict[str, float] | None = None,
        expire_rate: float = 0.0,
        seed: int = 0,
        retention_days: float = 29.0,
        strict_models: bool | list[str] | None = None,
        refusal_rate: float = 0.0,
        invalid_rate: float = 0.0,
        responder: Responder | None = None,
        api_keys: list[str] | None = None,
        max_requests: int = 100_000,
        max_body_bytes: int = 256 * 1024 * 1024,
        cache_min_tokens: int = 0,
        max_file_bytes: int = 500 * 1024 * 1024,
        files_storage_bytes: int = 500 * 1024**3,
    ) -> None:
        self._initial = Options(
            processing_time=processing_time,
            per_request_time=per_request_time,
            speed=speed,
            cancel_delay=cancel_delay,
            error_rates=dict(error_rates or {}),
            expire_rate=expire_rate,
            seed=seed,
            retention_days=retention_days,
            strict_models=strict_models,
            refusal_rate=refusal_rate,
            invalid_rate=invalid_rate,
            responder=responder,
            api_keys=api_keys,
            max_requests=max_requests,
            max_body_bytes=max_body_bytes,
            cache_min_tokens=cache_min_tokens,
            max_file_bytes=max_file_bytes,
            files_storage_bytes=files_storage_bytes,
        )
        self._app = App(self._initial.copy(), clock, None if state_dir is None else os.fspath(state_dir))
        self._requested = (host, port)
        self._verbose = verbose
        self._log: list[RequestRecord] = []  # outlives a stop(), so it can be read afterwards
        self._log_lock = threading.Lock()
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- life -------------------------------------------------------------------------------
    def start(self) -> Simulator:
        """Bind and serve on a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError(f"simulator already running at {self.url}")
        server = SimHTTPServer(self._requested, self._app, self._verbose, self._log, self._log_lock)
        host, port = server.server_address[:2]
        host_s = host.decode() if isinstance(host, bytes) else host
        self._server = server
        self._url = f"http://{host_s}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"batch-magic-simulator:{port}", daemon=True
        )
        self._thread.start()
        with _RUNNING_LOCK:
            _RUNNING.add(self._url)
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        with _RUNNING_LOCK:
            _RUNNING.discard(self._url or "")
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (only while running)."""
        if self._url is None or self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def env(self, api_key: str = "sk-sim-anything") -> dict[str, str]:
        """The environment variables that point an SDK at this simulator."""
        return {"ANTHROPIC_BASE_URL": self.url, "ANTHROPIC_API_KEY": api_key}

    def client(self, api_key: str = "sk-sim-anything", **kwargs: Any) -> Any:
        """An ``anthropic.Anthropic`` client pointed at this simulator."""
        import anthropic

        return anthropic.Anthropic(api_key=api_key, base_url=self.url, **kwargs)

    def async_client(self, api_key: str = "sk-sim-anything", **kwargs: Any) -> Any:
        """An ``anthropic.AsyncAnthropic`` client pointed at this simulator."""
        import anthropic

        return anthropic.AsyncAnthropic(api_key=api_key, base_url=self.url, **kwargs)

    # -- options ----------------------------------------------------------------------------
    @property
    def options(self) -> Options:
        """The options in force (a copy is taken into each batch at creation)."""
        return self._app.options

    def configure(self, **changes: Any) -> None:
        """Change options while running; they apply to batches created from now on."""
        self._app.options = self._app.options.copy(**changes)

    @property
    def clock(self) -> Clock:
        return self._app.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._app.clock = clock

    def use_fake_clock(self, start: float | None = None) -> FakeClock:
        """Switch to a :class:`FakeClock` and return it (call before creating batches)."""
        fake = FakeClock(start)
        self._app.clock = fake
        return fake

    # -- faults -----------------------------------------------------------------------------
    def add_fault(
        self,
        endpoint: str = "*",
        status: int | None = None,
        *,
        times: int | None = None,
        probability: float | None = None,
        retry_after: float | None = None,
        delay: float = 0.0,
        drop_after_lines: int | None = None,
        message: str | None = None,
        error_type: str | None = None,
    ) -> Fault:
        """Script an HTTP failure of ``endpoint`` (see :class:`~.faults.Fault`)."""
        fault = Fault(
            endpoint=endpoint,
            status=status,
            error_type=error_type,
            message=message,
            times=times,
            probability=probability,
            retry_after=retry_after,
            delay=delay,
            drop_after_lines=drop_after_lines,
        )
        return self._app.faults.add(fault)

    def remove_fault(self, fault: Fault) -> None:
        self._app.faults.remove(fault)

    def clear_faults(self) -> None:
        self._app.faults.clear()

    @property
    def faults(self) -> list[Fault]:
        return list(self._app.faults.faults)

    # -- inspection -------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served since the last reset, oldest first (also after stop())."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def batch_ids(self) -> list[str]:
        """Ids of the batches that exist (not deleted), oldest first."""
        return self._app.store.ids()

    def batch(self, batch_id: str) -> dict[str, Any]:
        """A batch as ``retrieve`` would answer it now (no request is logged)."""
        base = self._url or "http://127.0.0.1"
        return self._app.store.get(batch_id).to_json(self._app.now(), base)

    def batch_requests(self, batch_id: str) -> list[dict[str, Any]]:
        """The requests of a batch as they were sent (``custom_id`` and ``params``)."""
        import json

        cids, params = self._app.store.get(batch_id).requests()
        return [{"custom_id": c, "params": json.loads(p)} for c, p in zip(cids, params)]

    def file_ids(self) -> list[str]:
        """Ids of the uploaded files that exist (not deleted), oldest first."""
        return self._app.files.ids()

    def add_file(
        self,
        data: bytes,
        filename: str,
        mime_type: str | None = None,
        *,
        downloadable: bool = False,
        expires_in_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Store a file as if uploaded (no request is logged) and return its ``FileMetadata``.

        ``downloadable=True`` stands for a file a tool created (the only kind the
        API lets ``GET /v1/files/{id}/content`` download).
        """
        stored = self._app.add_file(data, filename, mime_type, expires_in=expires_in_seconds,
                                    downloadable=downloadable)
        return stored.to_json()

    def reset(self, *, keep_options: bool = False) -> None:
        """Forget batches and files (also on disk), the request log, faults and the prompt cache.

        Options go back to the constructor's unless ``keep_options``.
        """
        self._app.store.clear()
        self._app.files.clear()
        self._app.cache.clear()
        self._app.faults.clear()
        self.clear_requests()
        if not keep_options:
            self._app.options = self._initial.copy()

    def __repr__(self) -> str:
        where = self._url if self._server is not None else "stopped"
        return f"<Simulator {where} batches={len(self.batch_ids())} files={len(self.file_ids())}>"


__all__ = ["Clock", "FakeClock", "RealClock", "Simulator", "is_simulator_url", "running_simulators"]
