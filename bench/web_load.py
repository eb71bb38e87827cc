"""Web load while a layoff runs: p50/p95 latency and errors of signed-in self-service and admin pages.

In the prepared company database (`bench/run.py`), with real parts only:

1. A real web server: gunicorn (`config.wsgi`, PORTAL_BENCH_WEB_WORKERS sync workers, default 2;
   production settings: DEBUG off), not `runserver`.
2. Signed-in users: the self-service bench manager of `bench/selfservice.py` (50 reports, 500
   pending steps: approvals inbox, one step, team, one report) and an IT admin (the changelists,
   searches and filters of `bench/admin_changelists.py`), each with a real session.
3. A layoff at the same time, as in `bench/lifecycle.py`: PORTAL_BENCH_LAYOFF leavers (default 1000)
   with PORTAL_BENCH_LAYOFF_ENTITLEMENTS each (10), provisioned on the peers (webhook receiver,
   slapd) first, terminated at once, then a `qcluster` of PORTAL_BENCH_WORKERS (2) revokes them.
4. Locust (headless, its own process) starts with the worker: PORTAL_BENCH_WEB_USERS simulated
   people (default 10; 3 managers to 1 admin, 0.2-1 s between clicks) for PORTAL_BENCH_WEB_SECONDS
   (60). A request is an error unless it answers 200 with at least one row of its page.

Figures: requests, errors, p50/p95/p99 (all pages and per page), how long the layoff ran during
the load window, and the layoff's own figures. Goals: zero errors, p95 under 500 ms.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.registry import Bench, Context, env_int, register

GOAL_P95_MS = 500.0
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def load_plan(ctx: Context) -> dict:
    """Who clicks what: the bench manager's self-service pages and the IT admin's changelists."""
    from django.conf import settings

    from bench.admin_changelists import PAGES
    from bench.selfservice import ROW_MARKERS, _bench_manager

    setup = _bench_manager()
    manager_pages = {
        "approvals inbox": "/approvals/",
        "approval step": f"/approvals/{setup['step_pk']}/",
        "team": "/team/",
        "team member": f"/team/{setup['report_pk']}/",
    }
    admin_pages = [
        {"name": f"{page} · {variant}", "url": url + query, "marker": 'name="_selected_action"'}
        for page, (url, variants) in PAGES.items()
        for variant, query in variants.items()
    ]
    return {
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "audiences": {
            "manager": {
                "session": _session(setup["user"]),
                "weight": 3,
                "pages": [
                    {"name": name, "url": url, "marker": ROW_MARKERS[name][0]} for name, url in manager_pages.items()
                ],
            },
            "admin": {"session": _session(ctx.user("it_admin")), "weight": 1, "pages": admin_pages},
        },
    }


def read_locust_csv(prefix: str) -> dict:
    """Locust's `<prefix>_stats.csv` and `_failures.csv` as figures: all pages, and per page."""

    def number(value: str) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0

    pages, total = {}, None
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            figures = {
                "requests": int(number(row["Request Count"])),
                "errors": int(number(row["Failure Count"])),
                "p50_ms": number(row["50%"]),
                "p95_ms": number(row["95%"]),
                "p99_ms": number(row["99%"]),
                "max_ms": number(row["Max Response Time"]),
                "requests_per_s": round(number(row["Requests/s"]), 2),
            }
            if row["Name"] == "Aggregated":
                total = figures
            else:
                pages[row["Name"]] = figures
    failures = []
    path = Path(f"{prefix}_failures.csv")
    if path.exists():
        with path.open(newline="") as handle:
            failures = [
                {"page": r["Name"], "error": r["Error"], "count": int(number(r["Occurrences"]))}
                for r in csv.DictReader(handle)
            ]
    if total is None:
        raise RuntimeError(f"Locust wrote no totals in {prefix}_stats.csv.")
    return {"all": total, "pages": pages, "failures": failures}


@register
class WebLoad(Bench):
    name = "web_load"

    def run(self, ctx: Context) -> dict:
        from django.conf import settings
        from django.db import connection

        from bench import lifecycle
        from portal.testing.ldap_server import LdapServer, slapd_missing_reason
        from portal.testing.webhook_server import WebhookServer
        from portal.testing.worker import QCluster, enqueue_to

        knobs = {
            "users": env_int("PORTAL_BENCH_WEB_USERS", 10),
            "seconds": env_int("PORTAL_BENCH_WEB_SECONDS", 60),
            "web_workers": env_int("PORTAL_BENCH_WEB_WORKERS", 2),
            "layoff": env_int("PORTAL_BENCH_LAYOFF", 1000),
            "layoff_entitlements": env_int("PORTAL_BENCH_LAYOFF_ENTITLEMENTS", 10),
            "workers": env_int("PORTAL_BENCH_WORKERS", 2),
        }
        plan = load_plan(ctx)
        work = Path(tempfile.mkdtemp(prefix="portal-web-load-"))
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps(plan))
        ldap_reason = slapd_missing_reason()
        cluster = QCluster(
            name=f"portal_webload_{uuid.uuid4().hex[:8]}",
            database=connection.settings_dict,
            settings_module="config.worker_settings",
            redis_url=settings.REDIS_URL,
            workers=knobs["workers"],
            deadlines=None,
            env={"LOG_LEVEL": "WARNING"},
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        bin_dir = Path(sys.executable).parent
        ldap = None if ldap_reason else LdapServer()
        server = None
        with WebhookServer() as hook:
            if ldap is not None:
                ldap.start()
            try:
                with cluster, enqueue_to(cluster):
                    apps = lifecycle._applications(hook, ldap)
                    prepared = lifecycle.layoff_prepare(apps, knobs["layoff"], knobs["layoff_entitlements"], hook, ldap)
                    connection.close()  # the server's processes and the worker share the database file
                    server_log = (work / "gunicorn.log").open("w")
                    server = subprocess.Popen(  # noqa: S603 - our own venv's gunicorn
                        [str(bin_dir / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                         "--workers", str(knobs["web_workers"]), "--timeout", "120", "--log-level", "warning"],
                        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=server_log,
                    )  # fmt: skip
                    _wait_http(base, server, work / "gunicorn.log")
                    runs, terminated = lifecycle.layoff_terminate(cluster, prepared["people"])
                    load_started = time.monotonic()
                    cluster.start(wait=False)
                    figures, drain_s = self._load(knobs, base, plan_path, work, runs, load_started)
                    layoff = lifecycle.layoff_figures(prepared, runs, drain_s=drain_s, hook=hook, ldap=ldap)
                    layoff["terminate_all_s"] = round(terminated, 1)
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(timeout=30)
                    server_log.close()
                if ldap is not None:
                    ldap.stop()
        overlap = min(drain_s, figures["load_seconds"])
        total = figures["all"]
        return {
            "size": ctx.size,
            "stack": f"{connection.vendor} + {'redis' if settings.REDIS_URL else 'orm'} broker",
            "server": f"gunicorn, {knobs['web_workers']} sync workers",
            "load_generator": f"locust headless, {knobs['users']} users (3 managers : 1 IT admin), 0.2-1 s waits",
            "knobs": knobs,
            "ldap": "slapd" if ldap is not None else f"none ({ldap_reason})",
            **figures,
            "layoff_running_s_of_load": round(overlap, 1),
            "layoff": layoff,
            "goals": {"zero_errors": total["errors"] == 0, "p95_under_500ms": total["p95_ms"] < GOAL_P95_MS},
        }

    def _load(self, knobs, base, plan_path, work, runs, started) -> tuple[dict, float]:
        """Run locust until it ends, watching the layoff; then wait for the layoff to finish."""
        from bench.lifecycle import _wait, layoff_quiet

        prefix = str(work / "locust")
        users = knobs["users"]
        bin_dir = Path(sys.executable).parent
        locust_log = (work / "locust.log").open("w")
        locust = subprocess.Popen(  # noqa: S603 - our own venv's locust
            [str(bin_dir / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--only-summary",
             "-u", str(users), "-r", str(users), "--run-time", f"{knobs['seconds']}s", "--host", base,
             "--csv", prefix, "--loglevel", "WARNING"],
            cwd=ROOT, env={**os.environ, "PORTAL_LOAD_PLAN": str(plan_path)},
            stdout=locust_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        drain_s = None
        while locust.poll() is None:
            if drain_s is None and layoff_quiet(runs):
                drain_s = time.monotonic() - started
            time.sleep(1.0)
        locust_log.close()
        load_seconds = time.monotonic() - started
        if locust.returncode not in (0, 1):  # 1: some requests failed (counted below)
            raise RuntimeError(f"locust exited with {locust.returncode}: {(work / 'locust.log').read_text()[-2000:]}")
        if drain_s is None:
            _wait(lambda: layoff_quiet(runs), timeout=3600, interval=1.0)
            drain_s = time.monotonic() - started
        return {"load_seconds": round(load_seconds, 1), **read_locust_csv(prefix)}, drain_s

    def report(self, by_size: dict[int, dict]) -> tuple[dict, str]:
        lines = []
        for size, f in sorted(by_size.items()):
            total, goals, lay = f["all"], f["goals"], f["layoff"]
            met = {True: "met", False: "NOT met"}
            lines += [
                f"company of {size} employees — {f['stack']}; {f['server']}; {f['load_generator']}",
                f"load {f['load_seconds']:.0f}s while a layoff of {lay['leavers']} x {lay['entitlements_each']} "
                f"ran for {f['layoff_running_s_of_load']:.0f}s of it (layoff drained in {lay['drain_s']:.0f}s, "
                f"peers {lay['peer_accounts_before']} → {lay['peer_accounts_after']} accounts)",
                f"{'page':<46}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}",
            ]
            for name, p in sorted(f["pages"].items()):
                lines.append(
                    f"{name:<46}{p['requests']:>9}{p['errors']:>8}{p['p50_ms']:>9.0f}{p['p95_ms']:>9.0f}{p['p99_ms']:>9.0f}"
                )
            lines.append(
                f"{'ALL':<46}{total['requests']:>9}{total['errors']:>8}{total['p50_ms']:>9.0f}"
                f"{total['p95_ms']:>9.0f}{total['p99_ms']:>9.0f}"
            )
            lines.append(
                f"goals: zero errors {met[goals['zero_errors']]}; "
                f"p95 < {GOAL_P95_MS:.0f} ms {met[goals['p95_under_500ms']]}"
            )
            for failure in f["failures"][:5]:
                lines.append(f"  error x{failure['count']}: {failure['page']}: {failure['error'][:120]}")
            lines.append("")
        return {"goals": {"errors": 0, "p95_ms_max": GOAL_P95_MS}, "by_size": by_size}, "\n".join(lines)


def _wait_http(base: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until the server answers any HTTP request (or fail with its log)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(base + "/", timeout=5)  # noqa: S310 - our own local server
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer on {base} within {timeout}s: {log.read_text()[-2000:]}")
