"""Usage feeds: an Okta System Log of a million sign-ins read into last use, its rate and its memory.

In the seeded company, `run` writes an Okta System Log as JSON lines (one `user.authentication.sso`
event per line, as Okta exports it) of `PORTAL_BENCH_USAGE_EVENTS` events (default 1,000,000), and one
a tenth that size, both over the same pool of (person, application) pairs: up to 5,000 employees'
work emails, every application's name, plus 5% sign-ins to applications Portal does not know and 2%
by people it does not know (those become unmatched rows). Each file is read by
`usage_import_path` (the `manage.py usage_import` path: the same reader and writer as the admin's
background import), timed: events per second. Then the large file is read again under tracemalloc:
the re-import must change nothing (its `entitlements_updated` is 0) and its traced peak is the
memory the import needs. Goal: the peak at 10x the events stays within 1.5x of the small file's
(memory bounded by distinct pairs, not by events).
"""

import json
import os
import random
import tempfile
import time
import tracemalloc

from bench.registry import Bench, Context, env_int, register

MEMORY_GOAL_RATIO = 1.5
PEOPLE = 5000


def _write_log(path: str, *, events: int, emails: list[str], apps: list[str], seed: int) -> int:
    rng = random.Random(seed)
    shadow = [f"Shadow app {i}" for i in range(40)]
    strangers = [f"contractor{i}@partner.example.net" for i in range(200)]
    template = (
        '{{"actor":{{"id":"00u{n}","type":"User","alternateId":"{email}","displayName":"Bench User"}},'
        '"client":{{"ipAddress":"203.0.113.9"}},"displayMessage":"User single sign on to app",'
        '"eventType":"user.authentication.sso","outcome":{{"result":"SUCCESS"}},'
        '"published":"2026-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z",'
        '"severity":"INFO","uuid":"bench-{n}","version":"0",'
        '"target":[{{"id":"0oa{app_id}","type":"AppInstance","alternateId":"{app}","displayName":"{app}"}}]}}\n'
    )
    with open(path, "w", encoding="utf-8") as out:
        for n in range(events):
            roll = rng.random()
            email = rng.choice(strangers) if roll < 0.02 else rng.choice(emails)
            app = rng.choice(shadow) if 0.02 <= roll < 0.07 else rng.choice(apps)
            out.write(
                template.format(
                    n=n,
                    email=email,
                    app=json.dumps(app)[1:-1],
                    app_id=abs(hash(app)) % 10**6,
                    month=rng.randint(1, 4),
                    day=rng.randint(1, 28),
                    hour=rng.randint(0, 23),
                    minute=rng.randint(0, 59),
                    second=rng.randint(0, 59),
                    ms=rng.randint(0, 999),
                )
            )
    return os.path.getsize(path)


def _read(path: str) -> tuple[dict, float]:
    from accounts.models import UsageSource
    from accounts.services.usage import usage_import_path

    started = time.perf_counter()
    done = usage_import_path(source=UsageSource.OKTA, path=path, application=None)
    seconds = time.perf_counter() - started
    if done.status != "done":
        raise AssertionError(f"The bench log was refused: {done.error}")
    return (
        {
            "events_read": done.events_read,
            "pairs": done.pairs,
            "entitlements_updated": done.entitlements_updated,
            "unmatched": done.unmatched,
        },
        seconds,
    )


@register
class UsageFeeds(Bench):
    name = "usage_feeds"

    def run(self, ctx: Context) -> dict:
        from accounts.models import Application, Employee

        events = env_int("PORTAL_BENCH_USAGE_EVENTS", 1_000_000)
        emails = list(Employee.objects.order_by("pk").values_list("work_email", flat=True)[:PEOPLE])
        apps = list(Application.objects.values_list("name", flat=True))
        if not emails or not apps:
            raise AssertionError("The seeded company has no employees or no applications to sign in to.")
        out = {"events": events, "people": len(emails), "applications": len(apps), "files": {}}
        with tempfile.TemporaryDirectory(prefix="portal-usage-bench-") as folder:
            for label, count in (("small", max(events // 10, 1)), ("large", events)):
                path = os.path.join(folder, f"okta-{label}.jsonl")
                size = _write_log(path, events=count, emails=emails, apps=apps, seed=count)
                first, seconds = _read(path)
                tracemalloc.start()
                again, _ = _read(path)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                out["files"][label] = {
                    "events": count,
                    "file_mb": round(size / 1048576, 1),
                    "seconds": round(seconds, 2),
                    "events_per_s": round(count / seconds),
                    **first,
                    "reimport_entitlements_updated": again["entitlements_updated"],
                    "peak_traced_mb": round(peak / 1048576, 1),
                }
        return out

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        lines = [
            f"{'size':>8} {'file':>6} {'events':>10} {'MB':>7} {'s':>7} {'events/s':>10} {'pairs':>8} "
            f"{'updated':>8} {'unmatched':>9} {'re-import':>9} {'peak MB':>8}"
        ]
        all_met = True
        goals = {}
        for size in sorted(by_size):
            files = by_size[size]["files"]
            for label in ("small", "large"):
                f = files[label]
                lines.append(
                    f"{size:>8} {label:>6} {f['events']:>10,} {f['file_mb']:>7} {f['seconds']:>7} "
                    f"{f['events_per_s']:>10,} {f['pairs']:>8,} {f['entitlements_updated']:>8,} "
                    f"{f['unmatched']:>9,} {f['reimport_entitlements_updated']:>9} {f['peak_traced_mb']:>8}"
                )
            per_pair = {label: files[label]["peak_traced_mb"] / max(files[label]["pairs"], 1) for label in files}
            ratio = round(per_pair["large"] / max(per_pair["small"], 1e-9), 2)
            met = ratio <= MEMORY_GOAL_RATIO and files["large"]["reimport_entitlements_updated"] == 0
            all_met &= met
            goals[size] = {"memory_per_pair_ratio_large_to_small": ratio, "met": met}
        lines.append(
            f"goal: peak memory per pair at 10x the events within {MEMORY_GOAL_RATIO}x, re-import changes nothing: "
            f"{'met' if all_met else 'MISSED'}"
        )
        document = {"sizes": {str(s): by_size[s] for s in by_size}, "goals": goals, "all_goals_met": all_met}
        return document, "\n".join(lines)
