"""Run callables at the same moment, each in its own thread with its own database connection.

The one harness for race tests (two deciders, two check-outs, two deliveries ...). A barrier
releases every thread together; each result is `("ok", value)` or `("error", exception)` in the
order the calls were given, so a test asserts what won and why the others were refused.
"""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

Outcome = tuple[str, Any]


def run_at_once(*calls: Callable[[], Any], timeout: float = 30) -> list[Outcome]:
    """Start every call together; wait for all. Fails the test if a thread hangs (a deadlock)."""
    if len(calls) < 2:
        raise ValueError("A race needs at least two calls.")
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome | None] = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[index] = ("ok", call())
        except Exception as exc:  # noqa: BLE001 - handed to the test, which decides
            outcomes[index] = ("error", exc)
        finally:
            # Each thread opened its own connections; a leftover one blocks the test database's teardown.
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout + 5)
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} of {len(calls)} threads did not finish (a deadlock?)"
    return outcomes  # type: ignore[return-value]


def kinds(outcomes: list[Outcome]) -> list[str]:
    """The sorted outcome kinds, e.g. `["error", "ok"]` when exactly one call won."""
    return sorted(kind for kind, _ in outcomes)
