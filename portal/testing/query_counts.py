"""Query-count baselines per page, kept in a JSON file next to the tests (NetBox's `query_counts.json`).

A test measures a page at each data size and calls `QueryCountBaselines.check`: the count must equal
the recorded baseline, so a query added fails and a query saved fails too until the baseline is lowered.
`check_complete` fails on a page without a baseline and on a baseline naming no page. With
PORTAL_UPDATE_QUERY_COUNTS=1 both record instead of asserting (the file is rewritten with sorted keys,
under a lock, so parallel test workers may record at once).
"""

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

UPDATE_ENV = "PORTAL_UPDATE_QUERY_COUNTS"


def updating() -> bool:
    """True when the baselines are being regenerated rather than checked."""
    return os.environ.get(UPDATE_ENV, "").lower() in {"1", "true", "yes"}


class QueryCountBaselines:
    """One section of a baselines file: `{page: {size: queries}}`; `regenerate` is the command to tell the reader."""

    def __init__(self, path: Path, section: str, *, regenerate: str) -> None:
        self.path = Path(path)
        self.section = section
        self.regenerate = regenerate

    def recorded(self) -> dict[str, dict[str, int]]:
        """The baselines of this section, as the file holds them now."""
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text()).get(self.section, {})

    def check(self, page: str, counts: dict[str, int]) -> None:
        """Fail unless `counts` (queries per data size) equals the page's baseline; record it when updating."""
        if updating():
            with self._editing() as sections:
                sections.setdefault(self.section, {})[page] = dict(counts)
            return
        baseline = self.recorded().get(page)
        if baseline is None:
            pytest.fail(f"{page} has no query-count baseline in {self.path.name} [{self.section}]; {self._how()}")
        problems = []
        for size, queries in counts.items():
            expected = baseline.get(size)
            if expected is None:
                problems.append(f"{page} at size {size}: {queries} queries, no baseline for this size; {self._how()}")
            elif queries > expected:
                problems.append(
                    f"{page} at size {size}: {queries} queries, baseline {expected}: a query was added — "
                    f"fix the N+1 or update the baseline on purpose ({self._how()})"
                )
            elif queries < expected:
                problems.append(
                    f"{page} at size {size}: {queries} queries, baseline {expected}: fewer than recorded — "
                    f"lower the baseline to keep it tight ({self._how()})"
                )
        stale_sizes = sorted(set(baseline) - set(counts))
        if stale_sizes:
            problems.append(f"{page}: baseline for sizes {stale_sizes} that are not measured; {self._how()}")
        if problems:
            pytest.fail("\n".join(problems))

    def check_complete(self, pages: Iterable[str]) -> None:
        """Fail if a page has no baseline or a baseline names no page; when updating, drop the stale ones."""
        pages = set(pages)
        if updating():
            with self._editing() as sections:
                section = sections.setdefault(self.section, {})
                for stale in set(section) - pages:
                    del section[stale]
            return
        recorded = set(self.recorded())
        problems = []
        if pages - recorded:
            problems.append(f"pages without a baseline: {sorted(pages - recorded)}")
        if recorded - pages:
            problems.append(f"baselines naming no page: {sorted(recorded - pages)}")
        if problems:
            pytest.fail(f"{self.path.name} [{self.section}]: {'; '.join(problems)}; {self._how()}")

    def _how(self) -> str:
        return f"regenerate with: {self.regenerate}"

    @contextmanager
    def _editing(self) -> Iterator[dict]:
        # The lock lives outside the work tree, so regenerating leaves nothing untracked behind.
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:16]
        lock = Path(tempfile.gettempdir()) / f"portal-query-counts-{digest}.lock"
        with lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                sections = json.loads(self.path.read_text()) if self.path.exists() else {}
                yield sections
                self.path.write_text(json.dumps(sections, indent=2, sort_keys=True) + "\n")
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
