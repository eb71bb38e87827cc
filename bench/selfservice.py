"""A manager's self-service pages at two company sizes: the approvals inbox and the team view.

In the seeded company, `run` adds a bench manager (an employee with a login), moves 50 existing
active employees under them (their seeded access and hardware come along) and gives them 500
pending approval steps: each report asks for each of 10 new applications (manager approval),
the step pending since a different time, with the guardian permission `decide_approvalstep` on
it, as `accounts.services.approval_steps` grants it; plus 20 steps the manager decided lately. All
of it with bulk inserts (a benchmark shortcut: 500 requests through the services would take the
bench longer than it measures), in one transaction; a database kept with `--keep-db` reuses what an earlier run added.

Then, signed in as the manager: `/approvals/` (500 rows), its oldest step `/approvals/<pk>/`,
`/team/` (50 rows) and one report `/team/<pk>/` (one holding 4 applications and 1 asset, so the
page has the same rows at every size). Goals (checked by `report`), as for the admin changelists:
the same number of queries at every size, and the median page time at the largest size within
1.5x of the smallest. A missed goal names the slowest queries at the largest size with their plan.
Each page must render the rows the database holds for it, and at least one (`RowCountError` otherwise).
"""

import datetime
import time

from bench.registry import Bench, Context, assert_rows, explain, measure_get, register

QUERY_GOAL = "same number of queries at every size"
TIME_GOAL_RATIO = 1.5

REPORTS = 50
APPLICATIONS = 10  # requests per report: REPORTS x APPLICATIONS pending steps
DECIDED = 20  # steps the manager decided lately (the inbox's second list)
TEAM_MEMBER_ENTITLEMENTS, TEAM_MEMBER_HARDWARE = 4, 1  # what the timed report holds, when one does
MANAGER_NUMBER = "BENCH-M0001"
USERNAME = "bench-manager"
APP_PREFIX = "Bench self-service app"
REASON = "Benchmark data (bench/selfservice.py)"

# What one row of each page looks like in its HTML, to count the rows shown.
ROW_MARKERS = {
    "approvals inbox": ['data-label="Requester"'],
    "approval step": ['name="decision" value="approve"'],  # 1 when the manager may decide it
    "team": ['data-label="Person"'],
    "team member": ['data-label="Application"', '<span class="mono">'],  # entitlements + hardware
}
EXPECTED_ROWS = {
    "approvals inbox": REPORTS * APPLICATIONS,  # waiting; the page shows APPROVALS_PER_PAGE of them
    "approval step": 1,
    "team": REPORTS,
    "team member": TEAM_MEMBER_ENTITLEMENTS + TEAM_MEMBER_HARDWARE,
}


@register
class SelfService(Bench):
    name = "selfservice"

    def run(self, ctx: Context) -> dict:
        from django.test import Client

        started = time.monotonic()
        setup = _bench_manager()
        setup["setup_seconds"] = round(time.monotonic() - started, 2)
        client = Client()
        client.force_login(setup.pop("user"))
        urls = {
            "approvals inbox": "/approvals/",
            "approval step": f"/approvals/{setup['step_pk']}/",
            "team": "/team/",
            "team member": f"/team/{setup['report_pk']}/",
        }
        # What each page must show, counted in the database (the team member page: that report's
        # live entitlements and held hardware, whatever the seed gave them).
        from accounts.views import APPROVALS_PER_PAGE

        expected = dict(EXPECTED_ROWS)
        expected["approvals inbox"] = min(expected["approvals inbox"], APPROVALS_PER_PAGE)
        expected["approval step"] = 1 if setup["step_pk"] else 0
        expected["team member"] = setup["report_rows"]
        pages = {}
        for page, url in urls.items():
            result = measure_get(client, url, repeat=ctx.repeat)
            body = client.get(url).content.decode(errors="replace")
            result["rows"] = sum(body.count(marker) for marker in ROW_MARKERS[page])
            result["rows_expected"] = expected[page]
            assert_rows(f"{page} ({url})", result["rows"], expected[page])
            for q in result["slowest_queries"][:2]:
                q["plan"] = explain(q["sql"])
            pages[page] = result
        return {"setup": setup, "pages": pages}

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        sizes = sorted(by_size)
        small, large = sizes[0], sizes[-1]
        pages_out, lines = {}, []
        header = f"{'page':<18}" + "".join(f"{'q@' + str(s):>9}" for s in sizes)
        header += "".join(f"{'ms@' + str(s):>11}" for s in sizes)
        header += "".join(f"{'p95@' + str(s):>11}" for s in sizes) + f"{'ratio':>7}{'cpu':>6}"
        header += f"{'rows':>10}{'db ms':>13}  goals"
        lines += [header, "-" * len(header)]
        all_met = rows_ok = True
        for key in by_size[small]["pages"]:
            per_size = {s: by_size[s]["pages"][key] for s in sizes}
            queries = {s: per_size[s]["queries"] for s in sizes}
            medians = {s: per_size[s]["median_ms"] for s in sizes}
            p95 = {s: per_size[s]["p95_ms"] for s in sizes}
            ratio = round(medians[large] / medians[small], 2) if medians[small] else None
            cpu = {s: per_size[s].get("median_cpu_ms") for s in sizes}
            cpu_ratio = round(cpu[large] / cpu[small], 2) if cpu[small] else None
            rows = {s: per_size[s]["rows"] for s in sizes}
            db_ms = {s: per_size[s].get("db_ms") for s in sizes}
            ok_status = all(per_size[s]["status"] == 200 for s in sizes)
            expected = {s: per_size[s].get("rows_expected") for s in sizes}
            ok_rows = all(rows[s] == expected[s] for s in sizes)
            queries_met = ok_status and len(set(queries.values())) == 1
            time_met = ok_status and ratio is not None and ratio <= TIME_GOAL_RATIO
            all_met &= queries_met and time_met
            rows_ok &= ok_rows
            pages_out[key] = {
                "url": {s: per_size[s]["url"] for s in sizes},
                "status": {s: per_size[s]["status"] for s in sizes},
                "rows_on_page": rows,
                "rows_expected": expected,
                "db_ms": db_ms,
                "queries": queries,
                "median_ms": medians,
                "p95_ms": p95,
                "samples_ms": {s: per_size[s]["samples_ms"] for s in sizes},
                "ratio_large_small": ratio,
                "median_cpu_ms": cpu,
                "cpu_ratio_large_small": cpu_ratio,
                "goal_same_queries": queries_met,
                "goal_time_ratio": time_met,
                "slowest_queries_at_largest": per_size[large]["slowest_queries"],
                "slowest_queries_at_smallest": per_size[small]["slowest_queries"],
            }
            marks = ("queries ok" if queries_met else "QUERIES DIFFER") + ", " + ("time ok" if time_met else "TOO SLOW")
            if not ok_rows:
                marks += f", ROWS NOT {expected}"
            if not ok_status:
                marks = f"HTTP {sorted(set(pages_out[key]['status'].values()))}"
            lines.append(
                f"{key:<18}"
                + "".join(f"{queries[s]:>9}" for s in sizes)
                + "".join(f"{medians[s]:>11.1f}" for s in sizes)
                + "".join(f"{p95[s]:>11.1f}" for s in sizes)
                + f"{ratio if ratio is not None else '-':>7}{cpu_ratio if cpu_ratio is not None else '-':>6}"
                + f"{rows[small]:>5}→{rows[large]:<4}"
                + (f"{db_ms[small]:>6.1f}→{db_ms[large]:<6.1f}" if None not in db_ms.values() else f"{'-':>13}")
                + f"  {marks}"
            )
        lines.append("")
        lines.append(
            f"Goals: {QUERY_GOAL}; median page time at {large} within {TIME_GOAL_RATIO}x of {small} (ratio). "
            f"A manager with {REPORTS} reports and {REPORTS * APPLICATIONS} pending steps. cpu: the same ratio "
            "for this process's CPU time. rows: rows shown at the smallest → largest size (team member: "
            "entitlements + hardware of one report). db ms: the page's queries alone, re-run and summed."
        )
        setup_s = ", ".join(f"{s}: {by_size[s]['setup']['setup_seconds']}s" for s in sizes)
        verdict = "All goals met." if all_met else "GOALS NOT MET."
        if not rows_ok:
            verdict += " Some pages do not show the rows expected (ROWS NOT n): check the setup."
        lines.append(f"Setup of the bench manager's data: {setup_s}. {verdict}")
        for key, page in pages_out.items():
            if page["goal_same_queries"] and page["goal_time_ratio"]:
                continue
            for q in page["slowest_queries_at_largest"][:1]:
                lines.append(f"  {key}: slowest query at {large}: {q['ms']} ms: {q['sql'][:160]}")
                for step in q.get("plan", [])[:4]:
                    lines.append(f"      plan: {step}")
        doc = {
            "benchmark": self.name,
            "sizes": sizes,
            "goals": {"queries": QUERY_GOAL, "time_ratio_max": TIME_GOAL_RATIO},
            "scenario": {"reports": REPORTS, "pending_steps": REPORTS * APPLICATIONS, "decided_steps": DECIDED},
            "all_goals_met": all_met,
            "rows_as_expected": rows_ok,  # else the pages compared are not alike (see rows_on_page)
            "setup": {s: by_size[s]["setup"] for s in sizes},
            "pages": pages_out,
        }
        return doc, "\n".join(lines)


# --- Setup ----------------------------------------------------------------------------------------


def _bench_manager() -> dict:
    """The bench manager's login, the report and step whose pages are timed, and what was created."""
    from django.db import transaction

    from accounts.models import Employee

    with transaction.atomic():
        manager = Employee.objects.filter(employee_number=MANAGER_NUMBER).select_related("user").first()
        reused = manager is not None
        if manager is None:
            manager = _create()
    return {"reused": reused, **_describe(manager)}


def _create():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from accounts.models import (
        AccessRequest,
        AccessRequestStatus,
        Application,
        ApprovalPolicy,
        ApprovalStep,
        ApprovalStepKind,
        ApprovalStepStatus,
        ApprovalStepUserObjectPermission,
        Employee,
        EmployeeStatus,
        Sensitivity,
    )
    from demo.seeding import bulk_insert

    now = timezone.now()
    today = timezone.localdate()
    # Reports: active employees of the seeded company who manage nobody, spread over the whole table.
    seeded = Employee.objects.filter(
        employee_number__startswith="S", status=EmployeeStatus.ACTIVE, anonymised_at__isnull=True
    )
    managers = Employee.objects.filter(manager__isnull=False).values("manager_id")
    candidates = list(seeded.exclude(pk__in=managers).order_by("pk").values_list("pk", flat=True))
    if len(candidates) < REPORTS:
        candidates = list(seeded.order_by("pk").values_list("pk", flat=True)[1:])
    if len(candidates) < REPORTS:
        raise RuntimeError(f"The selfservice benchmark needs {REPORTS} active seeded employees.")
    stride = len(candidates) // REPORTS
    report_ids = candidates[::stride][:REPORTS]
    first = Employee.objects.get(pk=report_ids[0])

    user = get_user_model()(username=USERNAME, first_name="Bench", last_name="Manager")
    user.set_unusable_password()
    user.save()
    (manager,) = bulk_insert(
        Employee,
        [
            Employee(
                employee_number=MANAGER_NUMBER,
                first_name="Bench",
                last_name="Manager",
                work_email="bench-manager@bench.example",
                title="Manager, Benchmarks",
                department_id=first.department_id,
                location_id=first.location_id,
                role_id=first.role_id,
                status=EmployeeStatus.ACTIVE,
                start_date=today - datetime.timedelta(days=3 * 365),
                user=user,
            )
        ],
        reason=REASON,
    )
    Employee.objects.filter(pk__in=report_ids).update(manager_id=manager.pk)

    owner_id = Employee.objects.filter(employee_number__startswith="S").order_by("pk").values_list("pk", flat=True)[0]
    apps = bulk_insert(
        Application,
        [
            Application(
                name=f"{APP_PREFIX} {k:02d}",
                description="Application for the self-service benchmark.",
                owner_id=owner_id,
                access_levels=["user", "admin"],
                approval_policy=ApprovalPolicy.MANAGER,
                sensitivity=[Sensitivity.LOW, Sensitivity.MEDIUM, Sensitivity.HIGH][k % 3],
            )
            for k in range(APPLICATIONS)
        ],
        reason=REASON,
    )
    # One pending request per (report, application), each with its manager step; then a few decided ones.
    pairs = [(r, a) for r in report_ids for a in apps]
    decided_pairs = pairs[:DECIDED]
    requests = bulk_insert(
        AccessRequest,
        [
            AccessRequest(
                employee_id=r,
                application=a,
                level="user",
                justification="Benchmark request.",
                status=AccessRequestStatus.PENDING,
            )
            for r, a in pairs
        ]
        + [
            AccessRequest(
                employee_id=r,
                application=a,
                level="admin",
                justification="Benchmark request (decided).",
                status=AccessRequestStatus.APPROVED,
                decided_at=now - datetime.timedelta(hours=n + 1),
            )
            for n, (r, a) in enumerate(decided_pairs)
        ],
        reason=REASON,
    )
    pending, decided = requests[: len(pairs)], requests[len(pairs) :]
    steps = bulk_insert(
        ApprovalStep,
        [
            ApprovalStep(
                request=req,
                order=1,
                kind=ApprovalStepKind.MANAGER,
                approver=manager,
                status=ApprovalStepStatus.PENDING,
                activated_at=now - datetime.timedelta(minutes=37 * (len(pending) - n)),
            )
            for n, req in enumerate(pending)
        ]
        + [
            ApprovalStep(
                request=req,
                order=1,
                kind=ApprovalStepKind.MANAGER,
                approver=manager,
                status=ApprovalStepStatus.APPROVED,
                activated_at=req.decided_at - datetime.timedelta(days=1),
                decided_by=user,
                decided_at=req.decided_at,
            )
            for req in decided
        ],
        reason=REASON,
    )
    permission = Permission.objects.get(content_type__app_label="accounts", codename="decide_approvalstep")
    ApprovalStepUserObjectPermission.objects.bulk_create(
        [
            ApprovalStepUserObjectPermission(user=user, permission=permission, content_object_id=step.pk)
            for step in steps
            if step.status == ApprovalStepStatus.PENDING
        ],
        batch_size=1000,
    )
    return manager


def _report_rows(report) -> int:
    """Rows the team member page shows for `report`: live entitlements plus held hardware (0 for none)."""
    from accounts.models import LIVE_ENTITLEMENT_STATUSES, Entitlement
    from assets.models import HardwareAsset

    if report is None:
        return 0
    live = Entitlement.objects.filter(employee=report, status__in=LIVE_ENTITLEMENT_STATUSES).count()
    return live + HardwareAsset.objects.filter(assigned_to=report, status__in=["assigned", "pending_return"]).count()


def _describe(manager) -> dict:
    """The pages' subjects (the first report on the team page, the oldest step in the inbox) and counts."""
    from django.db.models import Count, Q

    from accounts.models import LIVE_ENTITLEMENT_STATUSES, ApprovalStep, ApprovalStepStatus, Employee
    from accounts.models import ApprovalStepUserObjectPermission as Perm

    reports = Employee.objects.filter(manager=manager, anonymised_at__isnull=True)
    counts = reports.aggregate(
        entitlements=Count("entitlements", filter=Q(entitlements__status__in=LIVE_ENTITLEMENT_STATUSES), distinct=True),
        hardware=Count("hardware", filter=Q(hardware__status__in=["assigned", "pending_return"]), distinct=True),
    )
    pending = ApprovalStep.objects.filter(approver=manager, status=ApprovalStepStatus.PENDING)
    step = pending.order_by("activated_at", "pk").first()
    # The report whose page is timed: the first on the team page with 4 live entitlements and 1 held
    # asset (a page of the same length at every size), else simply the first.
    by_name = reports.order_by("last_name", "first_name", "pk")
    typical = by_name.annotate(
        live=Count("entitlements", filter=Q(entitlements__status__in=LIVE_ENTITLEMENT_STATUSES), distinct=True),
        held=Count("hardware", filter=Q(hardware__status__in=["assigned", "pending_return"]), distinct=True),
    ).filter(live=TEAM_MEMBER_ENTITLEMENTS, held=TEAM_MEMBER_HARDWARE)
    report = typical.first() or by_name.first()
    return {
        "user": manager.user,
        "manager_pk": manager.pk,
        "report_pk": report.pk if report else 0,
        "report_rows": _report_rows(report),
        "step_pk": step.pk if step else 0,
        "reports": reports.count(),
        "pending_steps": pending.count(),
        "permissions": Perm.objects.filter(user=manager.user, permission__codename="decide_approvalstep").count(),
        "reports_live_entitlements": counts["entitlements"],
        "reports_held_hardware": counts["hardware"],
    }
