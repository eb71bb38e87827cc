"""Lifecycle engine benchmark: time to deprovision, a layoff, and no-op throughput, with a real worker.

Runs in the prepared company database of `bench/run.py` (SQLite + ORM broker by default;
PostgreSQL + Redis when DATABASE_URL and REDIS_URL are set), with one real `qcluster` of
two worker processes (`portal.testing.worker.QCluster`) at production timings, a webhook
receiver (`portal.testing.webhook_server`) and, when slapd is installed, an OpenLDAP server.

1. Time to deprovision: leavers holding 10 entitlements (5 webhook, 5 LDAP applications; all
   webhook when slapd is missing), terminated one after the other with `employee_terminate
   (immediate=True)`; the figure is the engine's own `time_to_deprovision` (cut-off → last
   revocation confirmed). Median and p95. Goal: p95 < 10 s.
2. No-op throughput: runs of no-op tasks, all started at once; tasks per second.
3. Layoff: leavers of the company (2 entitlements each: webhook and LDAP) terminated at once;
   total time (terminating everyone, then until the queue is quiet) and tasks per second.
   Goal: ≥ half the no-op rate.

Task rates are the worker's: the runs are started (or people terminated) with the worker
stopped, so their tasks wait in the broker; the clock then runs from starting the worker until
the queue is quiet. Otherwise the rate would measure how fast this one process starts runs.

Sizes from the environment: PORTAL_BENCH_LEAVERS (default 20), PORTAL_BENCH_LAYOFF (1000),
PORTAL_BENCH_NOOP (2000), PORTAL_BENCH_WORKERS (2). It runs at company sizes up to
PORTAL_BENCH_LIFECYCLE_MAX_SIZE (10000): with `make bench`'s 1000 and 100000, once.
"""

import os
import statistics
import time
import uuid

from bench.registry import Bench, Context, percentile, register

DEPROVISION_GOAL_P95_S = 10.0
LAYOFF_GOAL_RATIO = 0.5


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


@register
class Lifecycle(Bench):
    name = "lifecycle"

    def run(self, ctx: Context) -> dict:
        if ctx.size > _env_int("PORTAL_BENCH_LIFECYCLE_MAX_SIZE", 10_000):
            return {"skipped": "company larger than PORTAL_BENCH_LIFECYCLE_MAX_SIZE (the size changes nothing here)"}
        from django.conf import settings
        from django.db import connection

        from portal.testing.ldap_server import LdapServer, slapd_missing_reason
        from portal.testing.webhook_server import WebhookServer
        from portal.testing.worker import QCluster, enqueue_to

        sizes = {
            "leavers": _env_int("PORTAL_BENCH_LEAVERS", 20),
            "layoff": _env_int("PORTAL_BENCH_LAYOFF", 1000),
            "noop": _env_int("PORTAL_BENCH_NOOP", 2000),
            "workers": _env_int("PORTAL_BENCH_WORKERS", 2),
        }
        stack = f"{connection.vendor} + {'redis' if settings.REDIS_URL else 'orm'} broker"
        ldap_reason = slapd_missing_reason()
        cluster = QCluster(
            name=f"portal_bench_{uuid.uuid4().hex[:8]}",
            database=connection.settings_dict,
            settings_module="config.worker_settings",
            redis_url=settings.REDIS_URL,
            workers=sizes["workers"],
            deadlines=None,
            env={"LOG_LEVEL": "WARNING"},
        )
        ldap = None if ldap_reason else LdapServer()
        with WebhookServer() as hook:
            if ldap is not None:
                ldap.start()
            try:
                with cluster, enqueue_to(cluster):
                    apps = _applications(hook, ldap)
                    deprovision = _deprovision(apps, sizes["leavers"])
                    noop = _noop(cluster, sizes["noop"])
                    layoff = _layoff(cluster, apps, sizes["layoff"])
            finally:
                if ldap is not None:
                    ldap.stop()
        ratio = layoff["tasks_per_s"] / noop["tasks_per_s"] if noop["tasks_per_s"] else 0.0
        return {
            "stack": stack,
            "workers": sizes["workers"],
            "ldap": "slapd" if ldap is not None else f"none ({ldap_reason})",
            "deprovision": deprovision,
            "noop": noop,
            "layoff": {**layoff, "ratio_to_noop": round(ratio, 2)},
            "goals": {
                "deprovision_p95_under_10s": deprovision["p95_s"] < DEPROVISION_GOAL_P95_S,
                "layoff_rate_at_least_half_noop": ratio >= LAYOFF_GOAL_RATIO,
            },
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        figures = next((f for f in by_size.values() if "skipped" not in f), {})
        doc = {"benchmark": self.name, **figures}
        if not figures:
            return doc, "(not run)"
        d, n, lay = figures["deprovision"], figures["noop"], figures["layoff"]
        goals = figures["goals"]
        lines = [
            f"stack: {figures['stack']}, {figures['workers']} workers, LDAP: {figures['ldap']}",
            f"{'measure':<44} {'value':>12}",
            f"{'time to deprovision, median (10 entitlements)':<44} {d['median_s']:>11.2f}s",
            f"{'time to deprovision, p95':<44} {d['p95_s']:>11.2f}s"
            + ("  goal < 10 s: met" if goals["deprovision_p95_under_10s"] else "  goal < 10 s: NOT met"),
            f"{'no-op tasks (' + str(n['tasks']) + ')':<44} {n['tasks_per_s']:>9.1f}/s",
            f"{'layoff of ' + str(lay['leavers']) + ' leavers: total':<44} {lay['total_s']:>11.1f}s"
            + f"  (terminating {lay['terminate_all_s']:.1f}s, worker {lay['drain_s']:.1f}s)",
            f"{'layoff: tasks done (' + str(lay['tasks']) + ')':<44} {lay['tasks_per_s']:>9.1f}/s"
            + f"  = {lay['ratio_to_noop']:.2f} × no-op"
            + ("  goal ≥ 0.5: met" if goals["layoff_rate_at_least_half_noop"] else "  goal ≥ 0.5: NOT met"),
        ]
        return doc, "\n".join(lines)


# --- Setup ----------------------------------------------------------------------------------------


def _applications(hook, ldap) -> list:
    """Ten applications: five on the webhook receiver and five on LDAP (all webhook without slapd)."""
    from accounts.models import Application, ApprovalPolicy

    apps = []
    for i in range(10):
        on_ldap = ldap is not None and i >= 5
        config = ldap.connector_config(groups={"user": f"bench-{i}-users"}) if on_ldap else hook.connector_config()
        app, _ = Application.objects.update_or_create(
            name=f"Bench lifecycle {i}",
            defaults={
                "connector": "ldap" if on_ldap else "webhook",
                "connector_config": config,
                "access_levels": ["user"],
                "approval_policy": ApprovalPolicy.NONE,
            },
        )
        apps.append(app)
    return apps


def _fresh_employees(count: int) -> list:
    """`count` active employees with no run and no live access (seeded access is marked revoked
    first, so a leaver run does only what the benchmark gives it). When the seeded company has too
    few, copies of its employees are added (a 1,000-person layoff needs more than 1,000 people)."""
    from accounts.models import LIVE_ENTITLEMENT_STATUSES, Employee, EmployeeStatus, Entitlement, EntitlementStatus

    def available():
        return Employee.objects.filter(status=EmployeeStatus.ACTIVE, checklist_runs__isnull=True).order_by("pk")

    missing = count - available().count()
    if missing > 0:
        template = available().first() or Employee.objects.order_by("pk").first()
        tag = uuid.uuid4().hex[:6]
        copies = []
        for i in range(missing):
            copy = Employee.objects.get(pk=template.pk)
            copy.pk = copy.id = None
            copy.user = None
            copy.status = EmployeeStatus.ACTIVE
            copy.employee_number = f"B{tag}{i:06d}"
            copy.work_email = f"bench.{tag}.{i}@example.com"
            copies.append(copy)
        Employee.objects.bulk_create(copies, batch_size=500)
    chosen = list(available().values_list("pk", flat=True)[:count])
    Entitlement.objects.filter(employee_id__in=chosen, status__in=LIVE_ENTITLEMENT_STATUSES).update(
        status=EntitlementStatus.REVOKED
    )
    return list(Employee.objects.filter(pk__in=chosen).order_by("pk"))


def _wait(predicate, *, timeout: float, interval: float):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout}s")
        time.sleep(interval)


# --- 1. Time to deprovision -------------------------------------------------------------------------


def _deprovision(apps, leavers: int) -> dict:
    from django.utils import timezone

    from accounts.models import Entitlement, EntitlementSource, EntitlementStatus
    from accounts.services import provisioning
    from offboarding.flows.leaver import employee_terminate
    from offboarding.models import ChecklistRun, Task, TaskStatus

    people = _fresh_employees(leavers)
    for person in people:
        for app in apps:
            entitlement = Entitlement.objects.create(
                employee=person, application=app, level="user", source=EntitlementSource.MANUAL
            )
            provisioning.entitlement_provision(entitlement=entitlement, idempotency_key=f"bench-setup-{entitlement.pk}")
    samples, walls = [], []
    for person in people:
        started = time.monotonic()
        run = employee_terminate(employee=person, last_day=timezone.localdate(), acting_user=None, immediate=True)

        def revoked(person=person, run=run):
            live = Entitlement.objects.filter(employee=person).exclude(status=EntitlementStatus.REVOKED).exists()
            return (
                not live
                and not Task.objects.filter(
                    run=run,
                    action="revoke_entitlement",
                    status__in=[TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.RUNNING],
                ).exists()
            )

        _wait(revoked, timeout=300, interval=0.05)
        walls.append(time.monotonic() - started)
        run = ChecklistRun.objects.get(pk=run.pk)
        samples.append(run.time_to_deprovision.total_seconds())
    return {
        "leavers": len(people),
        "entitlements_each": len(apps),
        "median_s": round(statistics.median(samples), 3),
        "p95_s": round(percentile(samples, 95), 3),
        "max_s": round(max(samples), 3),
        "wall_median_s": round(statistics.median(walls), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


# --- 2. No-op throughput ------------------------------------------------------------------------------


def _noop(cluster, tasks: int, per_run: int = 20) -> dict:
    from django.utils import timezone

    from offboarding import engine
    from offboarding.models import Assignee, ChecklistKind, ChecklistTemplate, Task, TaskStatus, TaskTemplate

    template, _ = ChecklistTemplate.objects.get_or_create(name="Bench no-op", kind=ChecklistKind.MOVE)
    for i in range(per_run):
        TaskTemplate.objects.get_or_create(
            checklist=template,
            key=f"noop-{i}",
            defaults={"title": "No-op", "assignee": Assignee.SYSTEM, "action": "noop"},
        )
    people = _fresh_employees(max(1, tasks // per_run))
    cluster.kill()  # the tasks wait in the broker; the worker then drains them at full speed
    started = time.monotonic()
    runs = [
        engine.run_start(employee=p, kind=ChecklistKind.MOVE, event_date=timezone.localdate(), acting_user=None).pk
        for p in people
    ]
    enqueued = time.monotonic() - started
    total = len(runs) * per_run
    started = time.monotonic()
    cluster.start(wait=False)  # a ping would queue behind the work
    _wait(
        lambda: Task.objects.filter(run_id__in=runs, status=TaskStatus.DONE).count() >= total,
        timeout=1800,
        interval=0.5,
    )
    elapsed = time.monotonic() - started
    template.is_active = False
    template.save(update_fields=["is_active"])
    return {"tasks": total, "runs": len(runs), "start_runs_s": round(enqueued, 1), "drain_s": round(elapsed, 1),
            "tasks_per_s": round(total / elapsed, 1), "action_ms": _action_durations(runs)}  # fmt: skip


# --- 3. Layoff -------------------------------------------------------------------------------------------


def _layoff(cluster, apps, leavers: int) -> dict:
    from django.utils import timezone

    from accounts.models import Entitlement, EntitlementSource, EntitlementStatus
    from offboarding.flows.leaver import employee_terminate
    from offboarding.models import Assignee, Task, TaskStatus

    people = _fresh_employees(leavers)
    two = [apps[0], apps[-1]]  # a webhook and (with slapd) an LDAP application
    Entitlement.objects.bulk_create(
        Entitlement(employee=p, application=a, level="user", source=EntitlementSource.MANUAL,
                    status=EntitlementStatus.ACTIVE, granted_at=timezone.now())
        for p in people for a in two
    )  # fmt: skip
    cluster.kill()  # terminate everyone first (HR's file arrives), then let the worker drain the queue
    started = time.monotonic()
    runs = [
        employee_terminate(employee=p, last_day=timezone.localdate(), acting_user=None, immediate=True).pk
        for p in people
    ]
    terminated = time.monotonic() - started
    drain_started = time.monotonic()
    cluster.start(wait=False)  # a ping would queue behind the work
    busy = [TaskStatus.QUEUED, TaskStatus.RUNNING]

    def quiet():
        from offboarding.engine import runnable_tasks

        tasks = Task.objects.filter(run_id__in=runs)
        if tasks.filter(status__in=busy).exists():
            return False
        return not runnable_tasks(now=timezone.now()).filter(run_id__in=runs, assignee_type=Assignee.SYSTEM).exists()

    _wait(quiet, timeout=3600, interval=1.0)
    elapsed = time.monotonic() - started
    drain = time.monotonic() - drain_started
    done = Task.objects.filter(run_id__in=runs, status=TaskStatus.DONE).count()
    revoked = Entitlement.objects.filter(
        employee__in=people, application__in=two, status=EntitlementStatus.REVOKED
    ).count()
    return {
        "leavers": len(people),
        "terminate_all_s": round(terminated, 1),
        "drain_s": round(drain, 1),
        "total_s": round(elapsed, 1),
        "tasks": done,
        "tasks_per_s": round(done / drain, 1),
        "entitlements_revoked": revoked,
        "entitlements": len(people) * len(two),
        "tasks_failed": Task.objects.filter(run_id__in=runs, status=TaskStatus.FAILED).count(),
        "tasks_pending_later": Task.objects.filter(run_id__in=runs, status=TaskStatus.PENDING).count(),
        "action_ms": _action_durations(runs),
    }


def _action_durations(runs: list[int]) -> dict:
    """Median time from claim to done per action (ms), and how many: where a layoff's time goes."""
    from offboarding.models import Task, TaskStatus

    by_action: dict[str, list[float]] = {}
    rows = Task.objects.filter(run_id__in=runs, status=TaskStatus.DONE, started_at__isnull=False)
    for action, started, completed in rows.values_list("action", "started_at", "completed_at"):
        if completed:
            by_action.setdefault(action, []).append((completed - started).total_seconds() * 1000)
    return {
        action: {"count": len(values), "median_ms": round(statistics.median(values), 1)}
        for action, values in sorted(by_action.items())
    }
