"""SCIM for identity providers: an Entra-style initial sync and a filtered list, at each company size.

`run` creates a SCIM connection in the seeded company and POSTs `PORTAL_BENCH_SCIM_USERS` (10,000)
new Users to `/scim/v2/Users` in-process (Django's test client: the view, scim2-server, the storage,
`employee_create` and the join run in one transaction per request, as a real push): users per second,
and the queries of every 100th request (goal: the same count for every request). Then, at this size,
`GET /scim/v2/Users?filter=userName eq "…"` (an IdP's lookup before a create) and a `sw` filter paged
by 50: queries (goal: the same at every size) and median time (goal: largest size within 1.5x).
The rate limit is lifted for the run (`override_settings`); everything else is the product's.
"""

import json
import statistics
import time

from bench.registry import Bench, Context, env_int, register

USERS = env_int("PORTAL_BENCH_SCIM_USERS", 10000)
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
    """Counts the queries run while it is installed (`connection.execute_wrapper`), DEBUG or not."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _counted(call):
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        response = call()
    return response, counter.count


def _timed_get(client, url, headers, repeat):
    client.get(url, **headers)
    response, queries = _counted(lambda: client.get(url, **headers))
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url, **headers)
        times.append((time.perf_counter() - started) * 1000)
    body = response.json()
    return {
        "status": response.status_code,
        "queries": queries,
        "total": body.get("totalResults"),
        "median_ms": round(statistics.median(times), 2),
    }


@register
class ScimSync(Bench):
    name = "scim"

    def run(self, ctx: Context) -> dict:
        from django.conf import settings
        from django.test import Client, override_settings

        from accounts.scim.services import scim_connection_create

        _, token = scim_connection_create(name=f"Bench IdP {time.time_ns()}", acting_user=None)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        client = Client()
        limits = {**settings.SCIM, "REQUESTS_PER_MINUTE": 10**9}
        queries, statuses = [], {}
        with override_settings(SCIM=limits):
            started = time.perf_counter()
            for n in range(USERS):
                if n % 100 == 50:  # not the first: it also creates the department
                    response, count = _counted(
                        lambda n=n: client.post(
                            "/scim/v2/Users", _payload(n), content_type="application/scim+json", **headers
                        )
                    )
                    queries.append(count)
                else:
                    response = client.post(
                        "/scim/v2/Users", _payload(n), content_type="application/scim+json", **headers
                    )
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            seconds = time.perf_counter() - started
            lookup = _timed_get(
                client,
                f'/scim/v2/Users?filter=userName eq "scim.bench.{USERS // 2}@bench.example"',
                headers,
                ctx.repeat,
            )
            prefix = _timed_get(
                client, '/scim/v2/Users?filter=name.familyName sw "Sync0"&count=50', headers, ctx.repeat
            )
        if statuses != {201: USERS}:
            raise AssertionError(f"The sync did not create every user: {statuses}")
        return {
            "users": USERS,
            "seconds": round(seconds, 2),
            "users_per_second": round(USERS / seconds, 1),
            "queries_per_create": sorted(set(queries)),
            "lookup": lookup,
            "filtered_page": prefix,
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        sizes = sorted(by_size)
        small, large = by_size[sizes[0]], by_size[sizes[-1]]
        goals = {
            "constant queries per create": all(len(r["queries_per_create"]) == 1 for r in by_size.values()),
            "same list queries at every size": len(
                {(r["lookup"]["queries"], r["filtered_page"]["queries"]) for r in by_size.values()}
            )
            == 1,
            "list time within 1.5x": large["filtered_page"]["median_ms"]
            <= TIME_GOAL_RATIO * max(small["filtered_page"]["median_ms"], 1),
        }
        lines = [f"{'size':>8} {'users/s':>8} {'q/create':>9} {'lookup q':>9} {'lookup ms':>10} {'page ms':>8}"]
        for size in sizes:
            r = by_size[size]
            lines.append(
                f"{size:>8} {r['users_per_second']:>8} {str(r['queries_per_create']):>9} "
                f"{r['lookup']['queries']:>9} {r['lookup']['median_ms']:>10} {r['filtered_page']['median_ms']:>8}"
            )
        lines += [f"goal {name}: {'met' if ok else 'MISSED'}" for name, ok in goals.items()]
        return {"by_size": {str(k): v for k, v in by_size.items()}, "goals": goals}, "\n".join(lines)
