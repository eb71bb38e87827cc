"""How far a long job has got, readable by any process while the job's transaction is still open.

A job that writes thousands of rows in one transaction (all or nothing) cannot show its progress
in the database: nobody else sees the rows before commit, and on SQLite nobody else may write
meanwhile. So progress goes to Django's cache when it is shared between processes (Redis), else
to a small file per job in `PORTAL_PROGRESS_DIR` (numbers only, never the job's data).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

TIMEOUT = 24 * 3600


def _shared_cache() -> bool:
    return not isinstance(cache, LocMemCache) and "dummy" not in type(cache).__module__


def _path(key: str) -> Path:
    folder = Path(getattr(settings, "PORTAL_PROGRESS_DIR", "") or Path(tempfile.gettempdir()) / "portal-progress")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{''.join(c if c.isalnum() or c in '-_' else '_' for c in key)}.json"


def progress_set(key: str, *, done: int, total: int, phase: str = "") -> None:
    """Record that the job `key` has done `done` of `total` steps (in `phase`)."""
    value = {"done": int(done), "total": int(total), "phase": phase}
    if _shared_cache():
        cache.set(f"progress:{key}", value, TIMEOUT)
        return
    path = _path(key)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(value))
    os.replace(partial, path)  # readers see the old figure or the new one, never half a file


def progress_get(key: str) -> dict | None:
    """The last progress recorded for `key`, or None."""
    if _shared_cache():
        return cache.get(f"progress:{key}")
    try:
        return json.loads(_path(key).read_text())
    except (OSError, ValueError):
        return None


def progress_clear(key: str) -> None:
    if _shared_cache():
        cache.delete(f"progress:{key}")
        return
    with contextlib.suppress(OSError):
        _path(key).unlink()
