"""Access reviews: launching a campaign over `PORTAL_BENCH_REVIEW_ENTITLEMENTS` (100,000) live entitlements,
and the reviewer's page with 500 items against a reviewer of a small campaign (50 items, one full page).

In the seeded company, `run` tops the live entitlements up to the target with bench applications held by
seeded employees (bulk inserts: a benchmark shortcut), and adds two bench reviewers with logins: a big
manager (50 reports x 10 bench applications = 500 items) and a small one (5 reports x 10 = 50: one full
page, so both pages render 50 rows and the ratio measures what 10x the items cost, not rendering 10x the
rows). Then it
launches a campaign over everything (`review_campaign_launch`, items and their history rows written in
batches, IT's fallback reviewer for the seeded people whose managers have no login), timed: wall and CPU
seconds, items per second, queries, and the growth of the process's peak RSS. Then `/reviews/` as each
reviewer (a page of 50 of 500, and 50 of 50). Goals: the same number of queries for both reviewers, the big
reviewer's median page time within 1.5x of the small one's, and the launch's queries per 1,000 items
constant (batched, not per item).
"""

import datetime
import resource
import time

from bench.registry import Bench, Context, env_int, measure_get, register

TIME_GOAL_RATIO = 1.5
BIG_REPORTS, BIG_APPS = 50, 10
SMALL_REPORTS, SMALL_APPS = 5, 10  # 50 items: one full page, so both pages render the same rows
APP_PREFIX = "Bench review app"
REASON = "Benchmark data (bench/reviews.py)"


class QueryCounter:
    """Counts queries while installed (`connection.execute_wrapper`), without keeping their SQL."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


@register
class Reviews(Bench):
    name = "reviews"

    def run(self, ctx: Context) -> dict:
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from accounts.models import AccessReview, Entitlement
        from accounts.services import reviews

        target = env_int("PORTAL_BENCH_REVIEW_ENTITLEMENTS", 100_000)
        started = time.monotonic()
        setup = _setup(target)
        setup["setup_seconds"] = round(time.monotonic() - started, 2)
        today = timezone.localdate()
        campaign = reviews.review_campaign_save(
            campaign=AccessReview(
                name="Bench review",
                starts_on=today,
                due_on=today + datetime.timedelta(days=14),
                scope_everything=True,
                recurrence="none",
            ),
            acting_user=None,
        )
        counter = QueryCounter()
        rss_before = _max_rss_mb()
        wall, cpu = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(counter):
            reviews.review_campaign_launch(campaign=campaign, acting_user=None, fallback_reviewer=setup.pop("it"))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        campaign.refresh_from_db()
        launch = {
            "entitlements_live": Entitlement.objects.filter(status__in=["active", "pending"]).count(),
            "items": campaign.item_count,
            "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "items_per_second": round(campaign.item_count / wall, 1) if wall else None,
            "queries": counter.count,
            "queries_per_1000_items": round(1000 * counter.count / campaign.item_count, 2),
            "peak_rss_growth_mb": round(_max_rss_mb() - rss_before, 1),
            "batch": reviews.LAUNCH_BATCH,
        }
        pages = {}
        for who in ("big", "small"):
            client = Client()
            client.force_login(setup[f"{who}_user"])
            result = measure_get(client, "/reviews/", repeat=ctx.repeat)
            body = client.get("/reviews/").content.decode(errors="replace")
            result["rows"] = body.count('name="items"')
            result["items_waiting"] = setup[f"{who}_items"]
            result.pop("slowest_queries", None)
            pages[who] = result
        for key in ("big_user", "small_user"):
            setup.pop(key)
        return {"setup": setup, "launch": launch, "pages": pages}

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        sizes = sorted(by_size)
        lines = [
            f"{'size':>8}{'items':>9}{'launch s':>10}{'cpu s':>8}{'items/s':>9}{'q/1k':>7}{'rss MB':>8}"
            f"{'q big':>7}{'q small':>8}{'ms big':>9}{'ms small':>9}{'ratio':>7}  goals"
        ]
        lines.append("-" * len(lines[0]))
        all_met = True
        per_size = {}
        for size in sizes:
            figures = by_size[size]
            launch, big, small = figures["launch"], figures["pages"]["big"], figures["pages"]["small"]
            ratio = round(big["median_ms"] / small["median_ms"], 2) if small["median_ms"] else None
            cpu_ratio = round(big["median_cpu_ms"] / small["median_cpu_ms"], 2) if small["median_cpu_ms"] else None
            queries_met = big["status"] == small["status"] == 200 and big["queries"] == small["queries"]
            time_met = ratio is not None and ratio <= TIME_GOAL_RATIO
            rows_ok = big["rows"] == min(50, big["items_waiting"]) and small["rows"] == min(50, small["items_waiting"])
            met = queries_met and time_met and rows_ok
            all_met &= met
            per_size[size] = {
                "launch": launch,
                "page_big": big,
                "page_small": small,
                "ratio_big_small": ratio,
                "cpu_ratio_big_small": cpu_ratio,
                "goal_same_queries": queries_met,
                "goal_time_ratio": time_met,
                "rows_as_expected": rows_ok,
                "setup": figures["setup"],
            }
            marks = ("queries ok" if queries_met else "QUERIES DIFFER") + ", " + ("time ok" if time_met else "TOO SLOW")
            if not rows_ok:
                marks += ", ROWS NOT AS EXPECTED"
            lines.append(
                f"{size:>8}{launch['items']:>9}{launch['seconds']:>10}{launch['cpu_seconds']:>8}"
                f"{launch['items_per_second']:>9}{launch['queries_per_1000_items']:>7}{launch['peak_rss_growth_mb']:>8}"
                f"{big['queries']:>7}{small['queries']:>8}{big['median_ms']:>9.1f}{small['median_ms']:>9.1f}"
                f"{ratio if ratio is not None else '-':>7}  {marks}"
            )
        lines.append("")
        lines.append(
            f"Launch over every live entitlement (topped up to PORTAL_BENCH_REVIEW_ENTITLEMENTS); /reviews/ for a "
            f"reviewer of {BIG_REPORTS * BIG_APPS} items (a page of 50) vs one of {SMALL_REPORTS * SMALL_APPS}. "
            f"Goals: the same queries, big within {TIME_GOAL_RATIO}x of small. "
            + ("All goals met." if all_met else "GOALS NOT MET.")
        )
        doc = {
            "benchmark": self.name,
            "sizes": sizes,
            "goals": {"queries": "same for a reviewer of 500 items and of 50", "time_ratio_max": TIME_GOAL_RATIO},
            "all_goals_met": all_met,
            "by_size": per_size,
        }
        return doc, "\n".join(lines)


# --- Setup ----------------------------------------------------------------------------------------


def _setup(target: int) -> dict:
    """Bench reviewers and their reports, the IT fallback reviewer, and live entitlements up to `target`."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Application, Employee, EmployeeStatus, Entitlement, EntitlementStatus

    now = timezone.now()
    users = get_user_model()
    with transaction.atomic():

        def person(number, *, manager=None, login=False):
            user = users.objects.create(username=f"bench-review-{number.lower()}") if login else None
            return Employee.objects.create(
                employee_number=number,
                first_name="Bench",
                last_name=number,
                work_email=f"{number.lower()}@bench-review.example",
                status=EmployeeStatus.ACTIVE,
                start_date=datetime.date(2024, 1, 1),
                manager=manager,
                user=user,
            )

        it = person("BR-IT", login=True)
        big = person("BR-BIG", login=True)
        small = person("BR-SMALL", login=True)
        apps = [
            Application.objects.create(name=f"{APP_PREFIX} {i}", access_levels=["user", "admin"])
            for i in range(max(BIG_APPS, SMALL_APPS))
        ]
        rows = []
        for manager, reports, count in ((big, BIG_REPORTS, BIG_APPS), (small, SMALL_REPORTS, SMALL_APPS)):
            for r in range(reports):
                report = person(f"{manager.employee_number}-R{r:03d}", manager=manager)
                rows += [
                    Entitlement(
                        employee=report,
                        application=app,
                        level="user",
                        status=EntitlementStatus.ACTIVE,
                        granted_at=now - datetime.timedelta(days=200),
                        last_used_at=now - datetime.timedelta(days=(r * 7 + i) % 180),
                    )
                    for i, app in enumerate(apps[:count])
                ]
        Entitlement.objects.bulk_create(rows, batch_size=2000)
        live = Entitlement.objects.filter(status__in=["active", "pending"]).count()
        missing = max(0, target - live)
        people = list(
            Employee.objects.filter(status=EmployeeStatus.ACTIVE, employee_number__startswith="S")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        added = 0
        n = 0
        while missing > 0 and people:
            app = Application.objects.create(name=f"{APP_PREFIX} fill {n}", access_levels=["user"])
            n += 1
            batch = [
                Entitlement(
                    employee_id=pk,
                    application=app,
                    level="user",
                    status=EntitlementStatus.ACTIVE,
                    granted_at=now - datetime.timedelta(days=30 + pk % 300),
                    last_used_at=None if pk % 3 else now - datetime.timedelta(days=pk % 200),
                )
                for pk in people[:missing]
            ]
            Entitlement.objects.bulk_create(batch, batch_size=2000)
            added += len(batch)
            missing -= len(batch)
    return {
        "it": it,
        "big_user": big.user,
        "small_user": small.user,
        "big_items": BIG_REPORTS * BIG_APPS,
        "small_items": SMALL_REPORTS * SMALL_APPS,
        "entitlements_seeded": live - len(rows),
        "entitlements_added": len(rows) + added,
        "target": target,
        "reason": REASON,
    }
