"""Which cached prompt prefixes the simulator has already seen.

The first request that carries a given prefix writes the cache
(``cache_creation_input_tokens``); every later one reads it
(``cache_read_input_tokens``). Ownership is recorded so that regenerating a
batch's results (another download, a restart) gives the same numbers again.
Cache expiry (5 minutes / 1 hour) is not modelled.
"""

from __future__ import annotations

import threading


class PromptCache:
    """Prefix key -> the owner that wrote it; thread-safe."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, owner: str) -> bool:
        """True if ``owner`` writes (or already wrote) this prefix, False if it reads it."""
        with self._lock:
            return self._owners.setdefault(key, owner) == owner

    def clear(self) -> None:
        with self._lock:
            self._owners.clear()

    def __len__(self) -> int:
        return len(self._owners)
