"""`audit_verify` over a large audit log: time and peak memory. Goal: 1M events under a minute, memory bounded.

In the seeded company, `run` grows the audit log to each count in `PORTAL_BENCH_AUDIT_EVENTS`
(default `100000,1000000`; comma-separated, ascending) with synthetic events sealed into the chain the
way the scale seeder seals them (`portal.auditchain.chain_seal_rows`, written with COPY on PostgreSQL),
then runs `portal.auditchain.audit_verify` (what `manage.py audit_verify` runs) in a child process
that reports its time, CPU time and peak resident memory (`getrusage(RUSAGE_SELF)`: the child alone).
Memory is bounded when the peak at the largest count is within 1.5x of the smallest. A verify that does
not pass fails the benchmark (RowCountError): timing a failing verify would time an early stop.
"""

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.registry import Bench, Context, RowCountError, register

GOAL_SECONDS = 60.0
ROOT = Path(__file__).resolve().parent.parent
BATCH = 20_000


def _counts() -> list[int]:
    raw = os.environ.get("PORTAL_BENCH_AUDIT_EVENTS", "").strip() or "100000,1000000"
    try:
        counts = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError as exc:
        raise ValueError(f"PORTAL_BENCH_AUDIT_EVENTS must be whole numbers separated by commas, not {raw!r}.") from exc
    return counts


def _grow(to: int) -> float:
    """Append synthetic events until the log holds `to`; returns the seconds it took."""
    from django.db import transaction
    from django.utils import timezone

    from demo.seeding import RawInserter
    from portal.auditchain import chain_seal_rows
    from portal.models import AuditEvent, AuditEventPersonal

    started = time.perf_counter()
    have = AuditEvent.objects.count()
    events_w, personal_w = RawInserter(AuditEvent), RawInserter(AuditEventPersonal)
    base = timezone.now() - datetime.timedelta(days=400)
    while have < to:
        rows = []
        for n in range(have, min(to, have + BATCH)):
            rows.append(
                {
                    "id": events_w.allocate(),
                    "created_at": base + datetime.timedelta(seconds=n * 30),
                    "action": AuditEvent.Action.GRANT if n % 3 else AuditEvent.Action.LEVEL_CHANGED,
                    "target_type": "accounts.Entitlement",
                    "target_id": str(n),
                    "actor_repr": f"bench-user-{n % 97}",
                    "target_repr": f"Person {n % 5000} · App {n % 40} (user)",
                    "detail": {"via": "bench", "n": n, "level": "user"},
                }
            )
        with transaction.atomic():
            personals = chain_seal_rows(rows)
            events_w.insert(rows)
            personal_w.insert(personals)
        have += len(rows)
    events_w.finish()
    return time.perf_counter() - started


# The child: verify, then report its own peak resident memory and CPU time (nothing else ran in it).
CHILD = """
import json, os, resource, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from portal.auditchain import audit_verify
started = time.perf_counter()
report = audit_verify()
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
first = report.problems[0].message if report.problems else ""
print(json.dumps({"ok": report.ok, "events": report.events, "first": first, "seconds": seconds,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_kib": usage.ru_maxrss}))
"""


def _verify() -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RowCountError(f"the audit_verify child failed: {done.stderr[-800:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["ok"]:
        raise RowCountError(f"audit_verify did not pass: {figures['first']}")
    return {
        "verified_events": figures["events"],
        "seconds": round(figures["seconds"], 2),
        "process_seconds": round(wall, 2),  # with Python and Django start-up
        "cpu_seconds": round(figures["cpu_seconds"], 2),
        "peak_rss_mib": round(figures["peak_rss_kib"] / 1024, 1),
    }


@register
class AuditVerify(Bench):
    name = "audit_verify"

    def run(self, ctx: Context) -> dict:
        runs = {}
        for count in _counts():
            grow_s = _grow(count)
            runs[str(count)] = {"events": count, "seal_and_write_seconds": round(grow_s, 2), **_verify()}
        return {"runs": runs}

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        lines = ["company     events  verify s  cpu s  peak MiB  goal"]
        bounded = {}
        for size, figures in sorted(by_size.items()):
            runs = sorted(figures["runs"].values(), key=lambda r: r["events"])
            for run in runs:
                ok = run["seconds"] < GOAL_SECONDS * run["events"] / 1_000_000
                lines.append(
                    f"{size:>7}  {run['events']:>9}  {run['seconds']:>8}  {run['cpu_seconds']:>5}  "
                    f"{run['peak_rss_mib']:>8}  {'met' if ok else 'MISSED'} (< {GOAL_SECONDS:.0f} s per 1M)"
                )
            bounded[size] = runs[-1]["peak_rss_mib"] <= 1.5 * runs[0]["peak_rss_mib"]
            lines.append(f"{'':>7}  memory bounded (largest within 1.5x of smallest): {bounded[size]}")
        document = {"goal_seconds_per_million": GOAL_SECONDS, "memory_bounded": bounded, "by_size": by_size}
        return document, "\n".join(lines)
