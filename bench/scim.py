"""SCIM for identity providers: an Entra-style initial sync and filtered lists, at each company size.

`run` loads the company's join and leave checklists (the demo's: a joiner gets a dozen tasks), creates
a SCIM connection and POSTs `PORTAL_BENCH_SCIM_USERS` (10,000) new Users to `/scim/v2/Users` in-process
(Django's test client: the view, scim2-server, the storage, `employee_create` and the join run with
its checklist in one transaction per request, as a real push): users per second, the CPU time of
this process per create (on SQLite it includes the database's work), and the queries of every
request (goal: one count for all). Then, at this size, three lists an IdP reads: `userName eq`
(its lookup before a create), `name.familyName sw` a prefix of ten synced users, and `sw "Sync0"`
(every synced user) paged by 50: queries (goal: the same at every size) and median time (goal:
largest size within 1.5x of the smallest). The rate limit is lifted for the run (`override_settings`);
everything else is the product's. `bench/scim_deprovision.py` measures an IdP's deactivation end to end.
"""

import json
import statistics
import time

from bench.registry import Bench, Context, env_int, register

USERS = env_int("PORTAL_BENCH_SCIM_USERS", 10000)
# After the lists, pad the employee table to this many people (bulk copies, no runs, access or history) and
# measure the lists again in the same database: their queries and time at 100x the people within one run,
# where seeding a full company of that size is not possible (0: off).
PAD_TO = env_int("PORTAL_BENCH_SCIM_PAD_TO", 0)
TIME_GOAL_RATIO = 1.5
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _payload(n: int) -> str:
    return json.dumps(
        {
            "schemas": [USER, ENTERPRISE],
            "userName": f"scim.bench.{n}@bench.example",
            "externalId": f"bench-{n}",
            "name": {"givenName": "Bench", "familyName": f"Sync{n:06d}"},
            "active": True,
            ENTERPRISE: {"employeeNumber": f"SCIMB-{n:06d}", "department": "SCIM bench"},
        }
    )


class QueryCounter:
    """Counts the queries run while it is installed (`connection.execute_wrapper`), DEBUG or not; the token's
    last-use stamp (an UPDATE of the connection at most once a minute, `scim_connection_authenticate`) apart."""

    def __init__(self):
        self.count = 0
        self.stamps = 0

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith('UPDATE "ACCOUNTS_SCIMCONNECTION"'):
            self.stamps += 1
        else:
            self.count += 1
        return execute(sql, params, many, context)


def _counted(call, stamps: list | None = None):
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        response = call()
    if stamps is not None:
        stamps.append(counter.stamps)
    return response, counter.count


def _timed_get(client, url, headers, repeat):
    """One list: status, queries, total, median wall and CPU time, and the plans of its employee queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.registry import explain

    client.get(url, **headers)
    response, queries = _counted(lambda: client.get(url, **headers))
    with CaptureQueriesContext(connection) as captured:
        client.get(url, **headers)
    sql = [q["sql"] for q in captured.captured_queries if "accounts_employee" in q["sql"]]
    times, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url, **headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    body = response.json()
    return {
        "status": response.status_code,
        "queries": queries,
        "total": body.get("totalResults"),
        "shown": len(body.get("Resources") or []),
        "median_ms": round(statistics.median(times), 2),
        "median_cpu_ms": round(statistics.median(cpu), 2),
        "plans": [explain(statement) for statement in sql],
    }


def _employees() -> int:
    from accounts.models import Employee

    return Employee.objects.count()


def _pad(target: int) -> int:
    """Add bare employees (bulk, 1,000 a batch) until there are `target`; how many were added. Their last
    names ("Pad…") match none of the lists' filters; the database's statistics are refreshed after."""
    from django.db import connection

    from accounts.models import Employee

    missing = target - _employees()
    tag = time.time_ns() % 10**8
    for start in range(0, max(missing, 0), 1000):
        Employee.objects.bulk_create(
            [
                Employee(
                    employee_number=f"PAD{tag}-{n:07d}",
                    first_name="Padding",
                    last_name=f"Pad{n:07d}",
                    work_email=f"pad.{tag}.{n}@pad.example",
                    start_date="2020-01-01",
                )
                for n in range(start, min(start + 1000, missing))
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return max(missing, 0)


@register
class ScimSync(Bench):
    name = "scim"

    def run(self, ctx: Context) -> dict:
        from django.conf import settings
        from django.test import Client, override_settings

        from accounts.scim.services import scim_connection_create
        from demo.checklists import demo_templates_sync

        checklists = demo_templates_sync()
        _, token = scim_connection_create(name=f"Bench IdP {time.time_ns()}", acting_user=None)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        client = Client()
        limits = {**settings.SCIM, "REQUESTS_PER_MINUTE": 10**9}
        queries, statuses, stamps = {}, {}, []
        with override_settings(SCIM=limits):
            client.get("/scim/v2/Users?count=1", **headers)  # the token's last use, stamped once a minute
            started, started_cpu = time.perf_counter(), time.process_time()
            for n in range(USERS):
                response, count = _counted(
                    lambda n=n: client.post(
                        "/scim/v2/Users", _payload(n), content_type="application/scim+json", **headers
                    ),
                    stamps,
                )
                if n:  # the first also creates the department
                    queries[count] = queries.get(count, 0) + 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
            lists = {
                "lookup": f'/scim/v2/Users?filter=userName eq "scim.bench.{USERS // 2}@bench.example"',
                "prefix_of_ten": f'/scim/v2/Users?filter=name.familyName sw "{f"Sync{USERS // 2:06d}"[:-1]}"',
                "filtered_page": '/scim/v2/Users?filter=name.familyName sw "Sync0"&count=50',
            }
            timed = {name: _timed_get(client, url, headers, ctx.repeat) | {"url": url} for name, url in lists.items()}
            padded = {}
            if PAD_TO:
                before = _employees()
                added = _pad(PAD_TO)
                padded = {
                    "employees_before": before,
                    "employees_after": _employees(),
                    "added": added,
                    **{name: _timed_get(client, url, headers, ctx.repeat) for name, url in lists.items()},
                }
        if statuses != {201: USERS}:
            raise AssertionError(f"The sync did not create every user: {statuses}")
        from offboarding.models import ChecklistKind, ChecklistRun, Task

        runs = ChecklistRun.objects.filter(kind=ChecklistKind.JOIN, employee__work_email__startswith="scim.bench.")
        return {
            "users": USERS,
            "checklists": checklists,
            "join_runs": runs.count(),
            "join_tasks": Task.objects.filter(run__in=runs).count(),
            "seconds": round(seconds, 2),
            "users_per_second": round(USERS / seconds, 1),
            "cpu_ms_per_create": round(cpu * 1000 / USERS, 2),
            "queries_per_create": sorted(queries),
            "queries_per_create_histogram": {str(k): v for k, v in sorted(queries.items())},
            "token_last_use_stamps": sum(stamps),  # not in queries_per_create: once a minute, not per request
            **timed,
            "employees": _employees(),
            "padded": padded,
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        sizes = sorted(by_size)
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        lists = ("lookup", "prefix_of_ten", "filtered_page")
        ratios = {
            name: round(large[name]["median_ms"] / max(small[name]["median_ms"], 1), 2)
            for name in lists
            if name in small and name in large
        }
        goals = {
            "constant queries per create": all(len(r["queries_per_create"]) == 1 for r in by_size.values()),
            "same list queries at every size": len(
                {tuple(r[name]["queries"] for name in lists if name in r) for r in by_size.values()}
            )
            == 1,
            "list time within 1.5x": all(ratio <= TIME_GOAL_RATIO for ratio in ratios.values()),
        }
        if len(sizes) == 1:  # nothing to compare across sizes (a padded run compares within its size, below)
            del goals["same list queries at every size"], goals["list time within 1.5x"]
            ratios = {}
        lines = [
            f"{'size':>8} {'users':>6} {'users/s':>8} {'cpu ms':>7} {'q/create':>9} "
            + " ".join(f"{name + ' q/ms':>22}" for name in lists)
        ]
        for size in sizes:
            r = by_size[size]
            lines.append(
                f"{size:>8} {r['users']:>6} {r['users_per_second']:>8} {r.get('cpu_ms_per_create', '-'):>7} "
                f"{str(r['queries_per_create']):>9} "
                + " ".join(
                    f"{(str(r[name]['queries']) + ' / ' + str(r[name]['median_ms'])) if name in r else '-':>22}"
                    for name in lists
                )
            )
        lines.append(f"list time, largest / smallest size: {ratios}")
        for size in sizes:
            padded = by_size[size].get("padded") or {}
            if padded:
                within = {
                    name: round(padded[name]["median_ms"] / max(by_size[size][name]["median_ms"], 1), 2)
                    for name in lists
                }
                same = all(padded[name]["queries"] == by_size[size][name]["queries"] for name in lists)
                goals[f"padded to {padded['employees_after']}: same list queries"] = same
                goals[f"padded to {padded['employees_after']}: list time within 1.5x"] = all(
                    r <= TIME_GOAL_RATIO for r in within.values()
                )
                padded["time_ratio"] = within
                lines.append(
                    f"size {size}, padded {padded['employees_before']} → {padded['employees_after']} employees: "
                    + ", ".join(f"{n} {padded[n]['queries']} q / {padded[n]['median_ms']} ms" for n in lists)
                    + f"; time ratio {within}"
                )
        lines += [f"goal {name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items()]
        doc = {"by_size": {str(k): v for k, v in by_size.items()}, "list_time_ratio": ratios, "goals": goals}
        return doc, "\n".join(lines)
