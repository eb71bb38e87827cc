"""A small registry of benchmarks, so later issues can add theirs.

A benchmark is a `Bench` subclass in a module of this package, decorated with `@register`:

    @register
    class ApprovalInbox(Bench):
        name = "approval_inbox"

        def run(self, ctx: Context) -> dict:        # once per company size, in a prepared database
            ...
            return {"pages": {...}}

        def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
            # JSON document for bench/results/<name>.json, and a text table for the terminal
            ...

`run.py` prepares one fresh database per size (migrate + `seed_scale --employees N`), calls `run`
for every selected benchmark in that database, then `report` with the figures of all sizes.
Helpers for timing requests and counting queries live here too.
"""

import importlib
import os
import pkgutil
import statistics
import time
from dataclasses import dataclass, field

REGISTRY: dict[str, type["Bench"]] = {}


@dataclass
class Context:
    """What a benchmark gets: the company size and a logged-in client per audience (created on demand)."""

    size: int
    vendor: str
    repeat: int = 5
    seed_seconds: float | None = None
    _clients: dict = field(default_factory=dict)

    def user(self, audience: str = "it_admin"):
        """The bench user of `audience` (it_admin, helpdesk, auditor): staff, in that group."""
        from django.contrib.auth import get_user_model

        from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK, groups_sync

        group = {"it_admin": IT_ADMIN, "helpdesk": IT_HELPDESK, "auditor": AUDITOR}[audience]
        user, _ = get_user_model().objects.get_or_create(username=f"bench-{audience}", defaults={"is_staff": True})
        user.groups.add(groups_sync()[group])
        return user

    def client(self, audience: str = "it_admin"):
        """A django.test.Client logged in as `user(audience)` (created on demand)."""
        if audience not in self._clients:
            from django.test import Client

            client = Client()
            client.force_login(self.user(audience))
            self._clients[audience] = client
        return self._clients[audience]


class Bench:
    name = ""

    def run(self, ctx: Context) -> dict:
        raise NotImplementedError

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        raise NotImplementedError


def register(cls: type[Bench]) -> type[Bench]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name.")
    REGISTRY[cls.name] = cls
    return cls


def discover() -> dict[str, type[Bench]]:
    """Import every module of the bench package so their `@register` run."""
    import bench

    for info in pkgutil.iter_modules(bench.__path__):
        if info.name not in {"run", "registry", "locustfile", "tests"}:
            importlib.import_module(f"bench.{info.name}")
    return REGISTRY


def env_int(name: str, default: int) -> int:
    """A benchmark knob from the environment: a whole number, `default` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}.") from None


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 5 samples is the slowest one)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def measure_get(client, url: str, *, repeat: int = 5, warmup: int = 1) -> dict:
    """GET `url`: status, queries (count, and the slowest with their SQL) and page time over `repeat` runs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        response = client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    # Copy now: the next request clears the connection's query log.
    queries = [{"ms": round(float(q["time"]) * 1000, 2), "sql": q["sql"]} for q in captured.captured_queries]
    body = response.content.decode(errors="replace")
    times, cpu_times = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - started_cpu) * 1000)
    for q in queries:  # the debug cursor's timings are in whole milliseconds: time each query again
        q["ms"] = rerun_ms(q["sql"])
    slowest = sorted(queries, key=lambda q: q["ms"], reverse=True)[:3]
    db_ms = sum(q["ms"] for q in queries if q["ms"] >= 0)
    return {
        "url": url,
        "status": response.status_code,
        "redirect": response.get("Location", ""),
        "rows": body.count('name="_selected_action"'),
        "queries": len(queries),
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "samples_ms": [round(t, 2) for t in times],
        # CPU time of this process: steadier than wall time on a busy machine; on SQLite it includes
        # the database's work, on PostgreSQL it does not.
        "median_cpu_ms": round(statistics.median(cpu_times), 2),
        # The page's queries run again on their own (best of 3, summed): the database's share of the
        # page, apart from rendering (a page with more rows takes longer to render, whatever the size).
        "db_ms": round(db_ms, 2),
        "slowest_queries": slowest,
    }


class RowCountError(AssertionError):
    """A page did not render the rows it should have: its timing would compare unlike pages."""


def assert_rows(page: str, shown: int, expected: int) -> int:
    """`shown` (rows counted in the page's HTML) must equal `expected` (counted in the database), and
    at least one: a page that renders no row measures an empty page, whatever its timing. Returns `shown`."""
    if expected < 1:
        raise RowCountError(
            f"{page}: the database holds nothing for this page to show (expected {expected} rows); "
            "a benchmark of an empty page measures nothing: check the seed or the benchmark's setup."
        )
    if shown != expected:
        raise RowCountError(f"{page}: the page rendered {shown} rows, but the database holds {expected} for it.")
    return shown


def changelist_expected_rows(user, url: str) -> int:
    """Rows an admin changelist at `url` must show for `user`: min(page size, the exact number of rows
    its filters and search select), counted with COUNT(*) on the changelist's queryset (not its
    paginator, which may estimate, and not the HTML)."""
    from django.test import RequestFactory
    from django.urls import resolve

    model_admin = resolve(url.partition("?")[0]).func.model_admin  # Django's admin views carry their ModelAdmin
    request = RequestFactory().get(url)
    request.user = user
    changelist = model_admin.get_changelist_instance(request)
    return min(changelist.list_per_page, changelist.queryset.count())


def explain(sql: str) -> list[str]:
    """The database's plan for one captured query (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN)."""
    from django.db import connection

    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    try:
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            return [" ".join(str(c) for c in row) for row in cursor.fetchall()]
    except Exception as exc:  # a captured query with literal params may not re-run verbatim
        return [f"(no plan: {exc})"]


def rerun_ms(sql: str, repeat: int = 3) -> float:
    """Best time of running one captured SELECT again (ms); -1 when it cannot be re-run verbatim."""
    from django.db import connection

    if not sql.lstrip().upper().startswith("SELECT"):
        return -1.0
    best = float("inf")
    try:
        with connection.cursor() as cursor:
            for _ in range(repeat):
                started = time.perf_counter()
                cursor.execute(sql)
                cursor.fetchall()
                best = min(best, (time.perf_counter() - started) * 1000)
    except Exception:
        return -1.0
    return round(best, 3)
