"""A JSON object on disk shared by many processes: the autotune table, the marlin build records.

Writers merge: each ``update`` takes an OS file lock (``filelock``: ``flock``, released by the OS
when the holder dies, so a killed writer never leaves a lock behind), re-reads the file, adds its
entries, writes a temporary file in the same folder and ``os.replace``s it over the old one, so a
reader sees the old or the new file, never half of one. Readers take no lock and validate what
they read: a missing, truncated, corrupt or wrong-typed file reads as empty (and the next write
replaces it), an entry that fails the caller's check is dropped. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

LOCK_TIMEOUT_S = 30.0  # a writer that cannot get the lock this long gives up (the cache is an optimisation)


def cache_root() -> Path:
    """``$QLINEAR_CACHE_DIR``, else ``$XDG_CACHE_HOME/qlinear``, else ``~/.cache/qlinear``."""
    base = os.environ.get("QLINEAR_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qlinear"


class JsonCache:
    def __init__(self, path: str | os.PathLike, valid: Callable[[str, Any], bool] = lambda k, v: True,
                 lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.valid = valid
        self.lock_timeout = lock_timeout

    def read(self) -> dict[str, Any]:
        """The file's valid entries; ``{}`` for a missing or unreadable file. Never raises."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(data, dict):  # valid JSON, wrong type ([], 3, "x"): as good as empty
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and self.valid(k, v)}

    def update(self, entries: dict[str, Any]) -> bool:
        """Merge ``entries`` into the file under the lock; False (with a warning) when the lock is
        not had within the timeout or the folder is not writable: the caller just loses the cache."""
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # short polls: a writer holds the lock for a few milliseconds
            with FileLock(str(self.path) + ".lock", timeout=self.lock_timeout).acquire(poll_interval=0.002):
                data = self.read()
                data.update(entries)
                fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "w") as f:
                        # no fsync: os.replace is atomic for other processes, and a lost cache after
                        # a power cut only costs a redo; fsync per write would slow every writer
                        # one dumps call (no indent): CPython's C encoder, not the pure-Python one
                        f.write(json.dumps(data, sort_keys=True, separators=(",", ":")))
                    os.replace(tmp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            return True
        except Timeout:
            warnings.warn(f"{self.path}: lock not acquired in {self.lock_timeout:.0f} s; entry not cached",
                          RuntimeWarning, stacklevel=2)
        except OSError as e:  # a read-only or full cache folder only costs a redo next time
            warnings.warn(f"{self.path}: not written ({e})", RuntimeWarning, stacklevel=2)
        return False

