"""Deprovisioning from the identity provider, end to end: the IdP's `active: false` PATCH answered →
the last revocation applied by the target applications' SCIM server.

In the seeded company, with its leave checklist (the demo's) and a real worker (`bench.lifecycle.
running_worker`: a `qcluster` of `PORTAL_BENCH_WORKERS` (2) processes at production timings):

1. `PORTAL_BENCH_SCIM_APPS` (10) applications with the SCIM connector, each its own target system
   (a tenant of `portal.testing.scim_server.ScimServer`: scim2-server, python-scim's service provider,
   on 127.0.0.1 behind a front door that counts every applied write and the time it was applied).
2. `PORTAL_BENCH_SCIM_LEAVERS` (20) people pushed in through Portal's SCIM server (`POST /scim/v2/Users`,
   their join runs), each given an entitlement to every application, **provisioned on the peer first**
   (`entitlement_provision`: the peer then holds an active account in the application's group; checked
   by asking the peer). Their join runs' automated tasks are left to finish before the clock starts.
3. One after the other, the IdP deactivates each: `PATCH /scim/v2/Users/<id>` with Entra's
   `{"op": "Replace", "path": "active", "value": "False"}`. The clock starts when that request is
   answered and stops at the moment the peer applied the last of the person's revocation writes (two per
   application: out of the group, then `active: false`), both read from the same clock (`time.time()`;
   the peer runs in this process). Then the peer is asked: every account inactive and out of its group,
   and exactly two writes per application.

Figures: median, p95 and max of that time (goal: p95 < 2 s), the engine's own `time_to_deprovision`
(cut-off → last revocation confirmed in Portal) beside it, the PATCH's own time and queries, writes
applied per leaver, and the median time per action of the leave runs (claim → done).
"""

import statistics
import time
import uuid

from bench.registry import Bench, Context, env_int, percentile, register

GOAL_P95_S = 2.0
GROUP = "Bench users"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@register
class ScimDeprovision(Bench):
    name = "scim_deprovision"

    def run(self, ctx: Context) -> dict:
        from django.conf import settings
        from django.db import connection

        from bench.lifecycle import _action_durations, running_worker
        from demo.checklists import demo_templates_sync
        from portal.testing.scim_server import ScimServer

        sizes = {
            "leavers": env_int("PORTAL_BENCH_SCIM_LEAVERS", 20),
            "apps": env_int("PORTAL_BENCH_SCIM_APPS", 10),
            "workers": env_int("PORTAL_BENCH_WORKERS", 2),
        }
        demo_templates_sync()
        with ScimServer() as peer, running_worker(sizes["workers"]):
            apps = _applications(peer, sizes["apps"])
            idp = _Idp()
            people = _provisioned_people(idp, peer, apps, sizes["leavers"])
            samples = [_deactivate(idp, peer, apps, person) for person in people]
        seconds = [s["seconds"] for s in samples]
        engine = [s["time_to_deprovision_s"] for s in samples if s["time_to_deprovision_s"] is not None]
        return {
            "size": ctx.size,
            "stack": f"{connection.vendor} + {'redis' if settings.REDIS_URL else 'orm'} broker",
            "workers": sizes["workers"],
            "leavers": len(samples),
            "applications_each": len(apps),
            "peer": "scim2-server (portal.testing.scim_server.ScimServer), one tenant per application",
            "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(percentile(seconds, 95), 3),
            "max_s": round(max(seconds), 3),
            "engine_time_to_deprovision_median_s": round(statistics.median(engine), 3) if engine else None,
            "engine_time_to_deprovision_p95_s": round(percentile(engine, 95), 3) if engine else None,
            "patch_median_ms": round(statistics.median(s["patch_ms"] for s in samples), 1),
            "patch_queries": sorted({s["patch_queries"] for s in samples}),
            "writes_applied_per_leaver": sorted({s["writes_applied"] for s in samples}),
            "samples_s": seconds,
            "action_ms": _action_durations([s["run"] for s in samples]),
            "goals": {"p95_under_2s": percentile(seconds, 95) < GOAL_P95_S},
        }

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        lines = []
        for size, r in sorted(by_size.items()):
            met = "met" if r["goals"]["p95_under_2s"] else "NOT met"
            lines += [
                f"company of {size} — {r['stack']}, {r['workers']} workers, {r['leavers']} leavers x "
                f"{r['applications_each']} SCIM applications (peer: {r['peer']})",
                f"  PATCH active=false answered → last revocation applied by the peer: median {r['median_s']:.3f}s, "
                f"p95 {r['p95_s']:.3f}s, max {r['max_s']:.3f}s  goal p95 < 2 s: {met}",
                f"  engine's time to deprovision (cut-off → last confirmed): median "
                f"{r['engine_time_to_deprovision_median_s']}s, p95 {r['engine_time_to_deprovision_p95_s']}s",
                f"  the PATCH itself: median {r['patch_median_ms']} ms, queries {r['patch_queries']}; "
                f"writes applied per leaver {r['writes_applied_per_leaver']}",
            ]
        return {"by_size": {str(k): v for k, v in by_size.items()}}, "\n".join(lines)


class _Idp:
    """The identity provider: a SCIM connection and Django's test client speaking to `/scim/v2/` in-process."""

    def __init__(self) -> None:
        from django.conf import settings
        from django.test import Client

        from accounts.scim.services import scim_connection_create

        _, token = scim_connection_create(name=f"Bench Entra {uuid.uuid4().hex[:6]}", acting_user=None)
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        self.client = Client()
        self.limits = {**settings.SCIM, "REQUESTS_PER_MINUTE": 10**9}

    def send(self, method: str, path: str, body: dict):
        import json

        from django.test import override_settings

        with override_settings(SCIM=self.limits):
            return self.client.generic(
                method, f"/scim/v2/{path}", json.dumps(body), content_type="application/scim+json", **self.headers
            )


def _applications(peer, count: int) -> list:
    """`count` SCIM applications, each a tenant of the peer with one group for its one level."""
    from accounts.models import Application, ApprovalPolicy

    apps = []
    for i in range(count):
        tenant = f"bench-{i:02d}"
        peer.add_group(GROUP, tenant=tenant)
        app, _ = Application.objects.update_or_create(
            name=f"Bench SCIM {i:02d}",
            defaults={
                "connector": "scim",
                "connector_config": peer.connector_config(tenant, groups={"user": GROUP}),
                "access_levels": ["user"],
                "approval_policy": ApprovalPolicy.NONE,
            },
        )
        apps.append((app, tenant))
    return apps


def _provisioned_people(idp: _Idp, peer, apps: list, count: int) -> list:
    """`count` people pushed in by the IdP, each with an account on every application, provisioned on the peer."""
    from accounts.models import Employee, Entitlement, EntitlementSource, EntitlementStatus
    from accounts.services import provisioning
    from bench.lifecycle import _wait, layoff_quiet
    from offboarding.models import ChecklistKind, ChecklistRun

    tag = uuid.uuid4().hex[:6]
    people = []
    for i in range(count):
        response = idp.send(
            "POST",
            "Users",
            {
                "schemas": [USER, ENTERPRISE],
                "userName": f"scim.leaver.{tag}.{i}@bench.example",
                "externalId": f"entra-{tag}-{i}",
                "name": {"givenName": "Leaver", "familyName": f"Bench{i:04d}"},
                "active": True,
                ENTERPRISE: {"employeeNumber": f"SCIML-{tag}-{i:04d}", "department": "SCIM bench"},
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"The IdP's create was refused: {response.status_code} {response.content[:300]!r}")
        person = Employee.objects.get(pk=response.json()["id"])
        for app, _ in apps:
            entitlement = Entitlement.objects.create(
                employee=person, application=app, level="user", source=EntitlementSource.MANUAL
            )
            provisioning.entitlement_provision(entitlement=entitlement, idempotency_key=f"bench-scim-{entitlement.pk}")
        people.append(person)
    active = Entitlement.objects.filter(employee__in=people, status=EntitlementStatus.ACTIVE).count()
    held = sum(_holds(peer, person, tenant) for person in people for _, tenant in apps)
    if active != held or held != count * len(apps):
        raise RuntimeError(
            f"Set-up: {count * len(apps)} accounts to provision, {active} active in Portal, {held} held by the "
            "peer; the deactivations would revoke access that was never there."
        )
    joins = list(ChecklistRun.objects.filter(employee__in=people, kind=ChecklistKind.JOIN).values_list("pk", flat=True))
    _wait(lambda: layoff_quiet(joins), timeout=600, interval=0.5)  # the joiners' automated tasks, done
    return people


def _holds(peer, person, tenant: str) -> bool:
    """The peer holds an active account of `person` in the application's group."""
    user = peer.user(person.work_email, tenant=tenant)
    return bool(user and user.get("active") and user["id"] in peer.members(GROUP, tenant=tenant))


def _deactivate(idp: _Idp, peer, apps: list, person) -> dict:
    """The IdP deactivates `person`; the time from its answer to the peer's last applied revocation."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.lifecycle import _wait
    from offboarding.models import ChecklistKind, ChecklistRun

    expected = 2 * len(apps)  # per application: out of the group, then active: false
    mark = len(peer.calls)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        response = idp.send(
            "PATCH",
            f"Users/{person.pk}",
            {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        )
    answered = time.time()
    patch_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or response.json().get("active") is not False:
        raise RuntimeError(f"The deactivation was refused: {response.status_code} {response.content[:300]!r}")

    def applied():
        return [c for c in peer.calls[mark:] if c.applied]

    try:
        _wait(lambda: len(applied()) >= expected, timeout=120, interval=0.01)
    except TimeoutError:
        raise RuntimeError(f"{person}: {len(applied())} of {expected} revocation writes applied in 120 s") from None
    time.sleep(0.2)  # a write more than expected would show now
    writes = applied()
    still = [tenant for _, tenant in apps if _holds(peer, person, tenant)]
    if still:
        raise RuntimeError(f"{person} still holds an active account at {', '.join(still)} after the revocations.")
    last = max(c.applied_at for c in writes[:expected])
    run = ChecklistRun.objects.get(employee=person, kind=ChecklistKind.LEAVE)
    _wait(lambda: ChecklistRun.objects.get(pk=run.pk).time_to_deprovision is not None, timeout=30, interval=0.05)
    run.refresh_from_db()
    return {
        "seconds": round(last - answered, 3),
        "time_to_deprovision_s": run.time_to_deprovision.total_seconds() if run.time_to_deprovision else None,
        "patch_ms": patch_ms,
        "patch_queries": len(queries.captured_queries),
        "writes_applied": len(writes),
        "run": run.pk,
    }
