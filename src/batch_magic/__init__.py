"""batch_magic: a ``%%batch`` cell magic for the Message Batches API.

``%load_ext batch_magic`` registers the magics. The same work is a plain
Python API: ``submit``, ``attach``, ``jobs``. Imports are lazy so that loading
the extension stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import attach, dry_run, jobs, prepare, submit
    from .datasets import load_invoices, load_products, load_tickets
    from .evaluation import compare, evaluate
    from .job import BatchJob
    from .options import JobOptions
    from .pilot import run_pilot
    from .retry import retry_failed
    from .settings import JobSettings
    from .status import JobStatus
    from .uploads import delete_job_files, job_files

_LAZY = {
    "submit": "api",
    "attach": "api",
    "jobs": "api",
    "prepare": "api",
    "dry_run": "api",
    "run_pilot": "pilot",
    "BatchJob": "job",
    "JobOptions": "options",
    "JobSettings": "settings",
    "JobStatus": "status",
    "load_tickets": "datasets",
    "load_products": "datasets",
    "load_invoices": "datasets",
    "job_files": "uploads",
    "delete_job_files": "uploads",
    "retry_failed": "retry",
    "evaluate": "evaluation",
    "compare": "evaluation",
}

__all__ = [  # noqa: RUF022 (grouped by purpose)
    "submit", "attach", "jobs", "prepare", "dry_run", "run_pilot", "retry_failed",
    "BatchJob", "JobOptions", "JobSettings", "JobStatus", "load_tickets", "load_products", "load_invoices",
    "job_files", "delete_job_files", "evaluate", "compare", "load_ipython_extension", "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batch_magic' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
