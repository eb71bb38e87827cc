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
3. Layoff: leavers of the company with 10 entitlements each (5 webhook, 5 LDAP), **provisioned on
   the peers first** through `entitlement_provision` (the peers then hold every account: counted
   before and after), terminated at once; total time (terminating everyone, then until the queue
   is quiet), tasks per second, and the slowest leaver's time from cut-off to last revocation.
   Goals: ≥ half the no-op rate; every access revoked within 60 s of the cut-off.

Task rates are the worker's: the runs are started (or people terminated) with the worker
stopped, so their tasks wait in the broker; the clock then runs from starting the worker until
the queue is quiet. Otherwise the rate would measure how fast this one process starts runs.

Sizes from the environment: PORTAL_BENCH_LEAVERS (default 20), PORTAL_BENCH_LAYOFF (1000),
PORTAL_BENCH_LAYOFF_ENTITLEMENTS (10), PORTAL_BENCH_NOOP (2000), PORTAL_BENCH_WORKERS (2). It runs
at every company size (each in its own fresh copy of the seed), and the figures say which size.
"""

import contextlib
import os
import statistics
import time
import uuid

from bench.registry import Bench, Context, env_int, percentile, register

DEPROVISION_GOAL_P95_S = 10.0
LAYOFF_GOAL_RATIO = 0.5
LAYOFF_GOAL_ALL_REVOKED_S = 60.0


@register
class Lifecycle(Bench):
    name = "lifecycle"

    def run(self, ctx: Context) -> dict:
        from django.conf import settings
        from django.db import connection

        from portal.testing.ldap_server import LdapServer, slapd_missing_reason
        from portal.testing.webhook_server import WebhookServer

        sizes = {
            "leavers": env_int("PORTAL_BENCH_LEAVERS", 20),
            "layoff": env_int("PORTAL_BENCH_LAYOFF", 1000),
            "layoff_entitlements": env_int("PORTAL_BENCH_LAYOFF_ENTITLEMENTS", 10),
            "noop": env_int("PORTAL_BENCH_NOOP", 2000),
            "workers": env_int("PORTAL_BENCH_WORKERS", 2),
        }
        stack = f"{connection.vendor} + {'redis' if settings.REDIS_URL else 'orm'} broker"
        ldap_reason = slapd_missing_reason()
        ldap = None if ldap_reason else LdapServer()
        with WebhookServer() as hook:
            if ldap is not None:
                ldap.start()
            try:
                with running_worker(sizes["workers"]) as cluster:
                    apps = _applications(hook, ldap)
                    deprovision = _deprovision(apps, sizes["leavers"])
                    startup = cluster_startup_cpu_s(cluster)
                    noop = _noop(cluster, sizes["noop"], startup_cpu_s=startup)
                    layoff = _layoff(
                        cluster, apps, sizes["layoff"], sizes["layoff_entitlements"], hook, ldap, startup_cpu_s=startup
                    )
            finally:
                if ldap is not None:
                    ldap.stop()
        ratio = layoff["tasks_per_s"] / noop["tasks_per_s"] if noop["tasks_per_s"] else 0.0
        return {
            "size": ctx.size,
            "stack": stack,
            "workers": sizes["workers"],
            "worker_startup_cpu_s": round(startup, 2),
            "ldap": "slapd" if ldap is not None else f"none ({ldap_reason})",
            "deprovision": deprovision,
            "noop": noop,
            "layoff": {**layoff, "ratio_to_noop": round(ratio, 2)},
            "goals": {
                "deprovision_p95_under_10s": deprovision["p95_s"] < DEPROVISION_GOAL_P95_S,
                "layoff_rate_at_least_half_noop": ratio >= LAYOFF_GOAL_RATIO,
                "layoff_all_revoked_within_60s": layoff["deprovision_max_s"] is not None
                and layoff["deprovision_max_s"] <= LAYOFF_GOAL_ALL_REVOKED_S,
            },
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        doc = {"by_size": by_size}
        lines = []
        for size, figures in sorted(by_size.items()):
            d, n, lay = figures["deprovision"], figures["noop"], figures["layoff"]
            goals = figures["goals"]
            met = {True: "met", False: "NOT met"}
            lines += [
                f"company of {size} employees — stack: {figures['stack']}, {figures['workers']} workers, "
                f"LDAP: {figures['ldap']}",
                f"{'measure':<48} {'value':>12}",
                f"{'time to deprovision, median (10 entitlements)':<48} {d['median_s']:>11.2f}s",
                f"{'time to deprovision, p95':<48} {d['p95_s']:>11.2f}s"
                + f"  goal < 10 s: {met[goals['deprovision_p95_under_10s']]}",
                f"{'no-op tasks (' + str(n['tasks']) + ')':<48} {n['tasks_per_s']:>9.1f}/s"
                + f"  (worker CPU {n.get('worker_cpu_ms_per_task') or 0:.1f} ms/task)",
                f"{'layoff of ' + str(lay['leavers']) + ' leavers x ' + str(lay['entitlements_each']) + ': total':<48}"
                + f" {lay['total_s']:>11.1f}s"
                + f"  (terminating {lay['terminate_all_s']:.1f}s, worker {lay['drain_s']:.1f}s)",
                f"{'layoff: slowest cut-off → last revocation':<48} {lay['deprovision_max_s'] or 0:>11.1f}s"
                + f"  goal ≤ 60 s: {met[goals['layoff_all_revoked_within_60s']]}",
                f"{'layoff: tasks done (' + str(lay['tasks']) + ')':<48} {lay['tasks_per_s']:>9.1f}/s"
                + f"  = {lay['ratio_to_noop']:.2f} × no-op  goal ≥ 0.5: {met[goals['layoff_rate_at_least_half_noop']]}"
                + f"  (worker CPU {lay.get('worker_cpu_ms_per_task') or 0:.1f} ms/task)",
                f"{'layoff: accounts on the peers before → after':<48} "
                + f"{lay['peer_accounts_before']} → {lay['peer_accounts_after']} "
                + f"(provisioned in {lay['provision_s']:.1f}s)",
                "",
            ]
        return doc, "\n".join(lines)


# --- Setup ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_worker(workers: int):
    """A real `qcluster` of `workers` processes at production timings on this database and broker
    (`portal.testing.worker.QCluster`), with every task this process enqueues going to it; the cluster.
    Shared by the benchmarks that measure the lifecycle end to end (this one, `scim_deprovision`)."""
    from django.conf import settings
    from django.db import connection

    from portal.testing.worker import QCluster, enqueue_to

    cluster = QCluster(
        name=f"portal_bench_{uuid.uuid4().hex[:8]}",
        database=connection.settings_dict,
        settings_module="config.worker_settings",
        redis_url=settings.REDIS_URL,
        workers=workers,
        deadlines=None,
        env={"LOG_LEVEL": "WARNING"},
    )
    with cluster, enqueue_to(cluster):
        yield cluster


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
    from bench.selfservice import MANAGER_NUMBER

    def available():
        # Not the self-service bench manager nor their reports: the web-load bench signs in as them
        # while a layoff runs, and a leaver's pending requests are withdrawn (their steps then 404).
        return (
            Employee.objects.filter(status=EmployeeStatus.ACTIVE, checklist_runs__isnull=True)
            .exclude(employee_number=MANAGER_NUMBER)
            .exclude(manager__employee_number=MANAGER_NUMBER)
            .order_by("pk")
        )

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


def cluster_cpu_s(cluster) -> float:
    """CPU seconds (user + system) used so far by the worker's live processes (its process group:
    sentinel, pusher, workers, monitor), read after a drain while they live: a figure that load from
    other programs on the machine changes far less than wall time (`cluster_startup_cpu_s` is the
    part spent starting)."""
    if cluster.process is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ..., utime (14th field overall), stime (15th).
        if int(fields[2]) == cluster.process.pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def cluster_startup_cpu_s(cluster) -> float:
    """CPU seconds a fresh worker spends starting (imports, Django set-up) and answering one ping:
    taken off the CPU measured after a drain, which starts a fresh worker too."""
    cluster.kill()
    cluster.start(wait=True)
    time.sleep(0.5)
    spent = cluster_cpu_s(cluster)
    cluster.kill()
    return spent


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


def _noop(cluster, tasks: int, per_run: int = 20, *, startup_cpu_s: float = 0.0) -> dict:
    from offboarding.models import Task, TaskStatus

    template = noop_template(per_run)
    people = _fresh_employees(max(1, tasks // per_run))
    cluster.kill()  # the tasks wait in the broker; the worker then drains them at full speed
    started = time.monotonic()
    runs = noop_runs_start(people)
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
    cpu = max(cluster_cpu_s(cluster) - startup_cpu_s, 0.0)
    template.is_active = False
    template.save(update_fields=["is_active"])
    return {"tasks": total, "runs": len(runs), "start_runs_s": round(enqueued, 1), "drain_s": round(elapsed, 1),
            "tasks_per_s": round(total / elapsed, 1), "worker_cpu_s": round(cpu, 2),
            "worker_cpu_ms_per_task": round(cpu * 1000 / total, 2) if total else None,
            "action_ms": _action_durations(runs)}  # fmt: skip


def noop_template(per_run: int):
    """The "Bench no-op" move checklist: `per_run` automated no-op tasks, none waiting for another."""
    from offboarding.models import Assignee, ChecklistKind, ChecklistTemplate, TaskTemplate

    template, _ = ChecklistTemplate.objects.get_or_create(name="Bench no-op", kind=ChecklistKind.MOVE)
    for i in range(per_run):
        TaskTemplate.objects.get_or_create(
            checklist=template,
            key=f"noop-{i}",
            defaults={"title": "No-op", "assignee": Assignee.SYSTEM, "action": "noop"},
        )
    return template


def noop_runs_start(people: list) -> list[int]:
    """One move run per person from the "Bench no-op" template, effective now; the runs' ids.

    Effective now, not at a run's default of 09:00 on its event date: before 09:00 local time the
    tasks would be due later in the day, stay pending, and the drain would wait for nothing. So
    every no-op task must be queued once this returns, or the benchmark stops here and says why.
    """
    from django.utils import timezone

    from offboarding import engine
    from offboarding.models import ChecklistKind, Task, TaskStatus

    now = timezone.now()
    runs = [
        engine.run_start(
            employee=p, kind=ChecklistKind.MOVE, event_date=timezone.localdate(now), effective_at=now, acting_user=None
        ).pk
        for p in people
    ]
    waiting = Task.objects.filter(run_id__in=runs, action="noop").exclude(status=TaskStatus.QUEUED).count()
    if waiting:
        raise RuntimeError(f"No-op bench: {waiting} no-op tasks were not queued when their runs started (due later?).")
    return runs


# --- 3. Layoff -------------------------------------------------------------------------------------------


def layoff_applications(apps: list, per_leaver: int) -> list:
    """`per_leaver` of the ten bench applications, webhook and LDAP in turn."""
    order = [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]
    if not 1 <= per_leaver <= len(order):
        raise ValueError(f"PORTAL_BENCH_LAYOFF_ENTITLEMENTS must be 1 to {len(order)}, not {per_leaver}.")
    return [apps[k] for k in order[:per_leaver]]


def peer_accounts(people: list, apps: list, hook, ldap) -> int:
    """How many of `people` x `apps` accounts the peers hold active right now (asked of the peers
    themselves: the webhook receiver's applied state, the LDAP groups' members on slapd)."""
    numbers = {p.employee_number for p in people}
    uids = {p.work_email.split("@")[0].lower() for p in people}
    count = 0
    for app in apps:
        if app.connector == "webhook":
            count += sum(
                1
                for (name, number), account in list(hook.app_accounts.items())
                if name == app.name and number in numbers and account["active"]
            )
        else:
            for group_dn in app.connector_config["groups"].values():
                members = ldap.members(group_dn)
                count += sum(1 for dn in members if dn.split(",")[0].partition("=")[2].lower() in uids)
    return count


def layoff_prepare(apps: list, leavers: int, per_leaver: int, hook, ldap, *, threads: int = 4) -> dict:
    """`leavers` fresh employees, each given `per_leaver` entitlements that are really provisioned on
    the peers through `entitlement_provision` (a few threads); fails unless the peers then hold every one."""
    import concurrent.futures

    from django.db import connections

    from accounts.models import Entitlement, EntitlementSource, EntitlementStatus
    from accounts.services import provisioning

    people = _fresh_employees(leavers)
    chosen = layoff_applications(apps, per_leaver)
    created = Entitlement.objects.bulk_create(
        [
            Entitlement(employee=p, application=a, level="user", source=EntitlementSource.MANUAL,
                        status=EntitlementStatus.PENDING)
            for p in people for a in chosen
        ],
        batch_size=1000,
    )  # fmt: skip
    pks = [e.pk for e in created]
    if any(pk is None for pk in pks):  # SQLite < 3.35 returns no ids from bulk_create
        pks = list(
            Entitlement.objects.filter(employee__in=people, status=EntitlementStatus.PENDING).values_list(
                "pk", flat=True
            )
        )

    def provision(batch: list[int]) -> None:
        try:
            for pk in batch:
                provisioning.entitlement_provision(
                    entitlement=Entitlement(pk=pk), idempotency_key=f"bench-layoff-setup-{pk}"
                )
        finally:
            connections.close_all()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(provision, pks[k::threads]) for k in range(threads)]:
            future.result()
    seconds = time.monotonic() - started
    active = Entitlement.objects.filter(pk__in=pks, status=EntitlementStatus.ACTIVE).count()
    on_peers = peer_accounts(people, chosen, hook, ldap)
    if active != len(pks) or on_peers != len(pks):
        raise RuntimeError(
            f"Layoff setup: {len(pks)} entitlements to provision, {active} active in Portal, {on_peers} held by "
            "the peers; the layoff would revoke access that was never there."
        )
    return {"people": people, "apps": chosen, "entitlements": len(pks), "provision_s": round(seconds, 1),
            "peer_accounts_before": on_peers}  # fmt: skip


def layoff_terminate(cluster, people: list) -> tuple[list[int], float]:
    """With the worker stopped (HR's file arrives at once), terminate everyone; the runs' ids and seconds."""
    from django.utils import timezone

    from offboarding.flows.leaver import employee_terminate

    cluster.kill()
    started = time.monotonic()
    runs = [
        employee_terminate(employee=p, last_day=timezone.localdate(), acting_user=None, immediate=True).pk
        for p in people
    ]
    return runs, time.monotonic() - started


def layoff_quiet(runs: list[int]) -> bool:
    """No task of `runs` queued or running, and none the worker could still run now."""
    from django.utils import timezone

    from offboarding.engine import runnable_tasks
    from offboarding.models import Assignee, Task, TaskStatus

    if Task.objects.filter(run_id__in=runs, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]).exists():
        return False
    return not runnable_tasks(now=timezone.now()).filter(run_id__in=runs, assignee_type=Assignee.SYSTEM).exists()


def layoff_figures(prepared: dict, runs: list[int], *, drain_s: float, hook, ldap) -> dict:
    """What the layoff did: tasks, revocations in Portal and on the peers, cut-off → last revocation."""
    from accounts.models import Entitlement, EntitlementStatus
    from offboarding.models import ChecklistRun, Task, TaskStatus

    people, chosen = prepared["people"], prepared["apps"]
    done = Task.objects.filter(run_id__in=runs, status=TaskStatus.DONE).count()
    deprovision = [
        d.total_seconds()
        for d in ChecklistRun.objects.filter(pk__in=runs).values_list("time_to_deprovision", flat=True)
        if d is not None
    ]
    return {
        "leavers": len(people),
        "entitlements_each": len(chosen),
        "provision_s": prepared["provision_s"],
        "drain_s": round(drain_s, 1),
        "tasks": done,
        "tasks_per_s": round(done / drain_s, 1) if drain_s else 0.0,
        "entitlements": prepared["entitlements"],
        "entitlements_revoked": Entitlement.objects.filter(
            employee__in=people, application__in=chosen, status=EntitlementStatus.REVOKED
        ).count(),
        "peer_accounts_before": prepared["peer_accounts_before"],
        "peer_accounts_after": peer_accounts(people, chosen, hook, ldap),
        "runs_with_deprovision_time": len(deprovision),
        "deprovision_median_s": round(statistics.median(deprovision), 2) if deprovision else None,
        "deprovision_p95_s": round(percentile(deprovision, 95), 2) if deprovision else None,
        "deprovision_max_s": round(max(deprovision), 2) if len(deprovision) == len(runs) else None,
        "tasks_failed": Task.objects.filter(run_id__in=runs, status=TaskStatus.FAILED).count(),
        "tasks_pending_later": Task.objects.filter(run_id__in=runs, status=TaskStatus.PENDING).count(),
        "action_ms": _action_durations(runs),
    }


def _layoff(cluster, apps, leavers: int, per_leaver: int, hook, ldap, *, startup_cpu_s: float = 0.0) -> dict:
    prepared = layoff_prepare(apps, leavers, per_leaver, hook, ldap)
    started = time.monotonic()
    runs, terminated = layoff_terminate(cluster, prepared["people"])
    drain_started = time.monotonic()
    cluster.start(wait=False)  # a ping would queue behind the work
    _wait(lambda: layoff_quiet(runs), timeout=3600, interval=1.0)
    drain = time.monotonic() - drain_started
    cpu = max(cluster_cpu_s(cluster) - startup_cpu_s, 0.0)
    figures = layoff_figures(prepared, runs, drain_s=drain, hook=hook, ldap=ldap)
    per_task = round(cpu * 1000 / figures["tasks"], 2) if figures["tasks"] else None
    return {"terminate_all_s": round(terminated, 1), "total_s": round(time.monotonic() - started, 1),
            "worker_cpu_s": round(cpu, 2), "worker_cpu_ms_per_task": per_task, **figures}  # fmt: skip


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
