"""The benchmark harness itself: results say what they measured, and an empty page fails the bench."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from bench.registry import RowCountError, assert_rows, changelist_expected_rows
from bench.web_load import read_locust_csv

ROOT = Path(__file__).resolve().parents[2]


class TestRowCounts:
    def test_zero_rows_fail_loudly(self):
        with pytest.raises(RowCountError, match="holds nothing for this page"):
            assert_rows("team", 0, 0)

    def test_a_page_showing_fewer_rows_than_the_database_holds_fails(self):
        with pytest.raises(RowCountError, match="rendered 0 rows, but the database holds 50"):
            assert_rows("team", 0, 50)
        with pytest.raises(RowCountError, match="rendered 49 rows"):
            assert_rows("team", 49, 50)

    def test_the_right_number_passes(self):
        assert assert_rows("team", 50, 50) == 50

    @pytest.mark.django_db
    def test_changelist_expectation_counts_the_database_not_the_page(self, admin_user):
        from accounts.tests.factories import EmployeeFactory

        EmployeeFactory.create_batch(3, status="active")
        EmployeeFactory(status="terminated")
        assert changelist_expected_rows(admin_user, "/admin/accounts/employee/") == 4
        assert changelist_expected_rows(admin_user, "/admin/accounts/employee/?status__exact=terminated") == 1
        assert changelist_expected_rows(admin_user, "/admin/accounts/employee/?status__exact=pre_hire") == 0


@pytest.mark.slow
def test_each_benchmark_runs_in_its_own_fresh_database_and_its_result_names_what_it_measured(tmp_path):
    """Two benchmarks at one size: one seed, two copies; the results carry every metadata key and
    say where their database came from. (A small real run: 200 people, the smallest company with
    an Anna Garcia for the full-name search.)"""
    results = ROOT / "bench" / "results"
    before = {p: p.read_bytes() for p in results.glob("*.json")} if results.exists() else {}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", "200",
             "--only", "admin_changelists,selfservice", "--repeat", "1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert done.stdout.count("seeding sqlite file") == 1  # one seed for the size ...
        assert done.stdout.count("in a fresh copy") == 2  # ... copied once per benchmark
        for name in ("admin_changelists", "selfservice"):
            doc = json.loads((results / f"{name}.json").read_text())
            assert set(run.METADATA_KEYS) <= set(doc), name
            assert doc["benchmark"] == name and doc["sizes"] == [200]
            assert doc["stack"]["database"] == "sqlite" and doc["stack"]["broker"] == "orm"
            assert len(doc["git"]["commit"]) == 40 and isinstance(doc["git"]["dirty"], bool)
            assert doc["machine"]["cpu_count"] >= 1 and doc["machine"]["hostname"]
            database = doc["databases"]["200"]
            assert database["seeded_from"].startswith("sqlite file") and database["copied_to"].startswith("sqlite file")
            assert f"bench_{name}_200" in database["copied_to"]
            assert database["rows_seeded"]["accounts.Employee"] == 200
            assert "access requests" in database["proportions"]
    finally:  # leave the committed figures as they were
        for path in results.glob("*.json"):
            if path in before:
                path.write_bytes(before[path])
            else:
                path.unlink()


def test_result_metadata_has_every_key():
    doc = run.result_metadata(
        name="x",
        stack={"database": "sqlite"},
        sizes=[1],
        databases={},
        git=run.git_state(),
        machine=run.machine_state(),
    )
    assert tuple(doc) == run.METADATA_KEYS


def test_bench_database_name_is_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("PORTAL_BENCH_DB", "portal_bench_b")
    assert run.pg_bench_db() == "portal_bench_b"
    monkeypatch.setenv("PORTAL_BENCH_DB", 'x"; DROP DATABASE portal; --')
    with pytest.raises(SystemExit, match="PORTAL_BENCH_DB must be"):
        run.pg_bench_db()


def test_locust_figures_are_read_with_errors(tmp_path):
    prefix = tmp_path / "locust"
    header = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    header += "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
    header += "99.99%,100%\n"
    (tmp_path / "locust_stats.csv").write_text(
        header
        + "GET,manager: team,10,2,30,35,10,90,5000,1.5,0.3,30,40,50,60,70,80,85,90,90,90,90\n"
        + ",Aggregated,10,2,30,35,10,90,5000,1.5,0.3,30,40,50,60,70,80,85,90,90,90,90\n"
    )
    (tmp_path / "locust_failures.csv").write_text(
        "Method,Name,Error,Occurrences\nGET,manager: team,no row rendered,2\n"
    )
    figures = read_locust_csv(str(prefix))
    assert figures["all"] == {"requests": 10, "errors": 2, "p50_ms": 30.0, "p95_ms": 80.0, "p99_ms": 90.0,
                              "max_ms": 90.0, "requests_per_s": 1.5}  # fmt: skip
    assert figures["failures"] == [{"page": "manager: team", "error": "no row rendered", "count": 2}]


def test_a_knob_that_is_not_a_whole_number_is_refused_by_name(monkeypatch):
    from bench.registry import env_int

    monkeypatch.setenv("PORTAL_BENCH_LAYOFF", "1k")
    with pytest.raises(SystemExit, match=r"PORTAL_BENCH_LAYOFF must be a whole number, not '1k'"):
        env_int("PORTAL_BENCH_LAYOFF", 1000)
    monkeypatch.setenv("PORTAL_BENCH_LAYOFF", "")
    assert env_int("PORTAL_BENCH_LAYOFF", 1000) == 1000


@pytest.mark.django_db
def test_no_op_runs_are_queued_at_once_before_nine_in_the_morning(monkeypatch, django_capture_on_commit_callbacks):
    """The no-op bench drains what its runs queued. Runs start effective now: at a run's default
    (09:00 on its event date) a bench started at 02:00 found every no-op task pending until 09:00
    and waited its whole 30-minute timeout for them."""
    import datetime

    from django.utils import timezone

    from accounts.tests.factories import EmployeeFactory
    from bench.lifecycle import noop_runs_start, noop_template
    from offboarding.models import Task, TaskStatus

    early = timezone.make_aware(datetime.datetime.combine(timezone.localdate(), datetime.time(2, 0)))
    monkeypatch.setattr(timezone, "now", lambda: early)
    noop_template(3)
    people = [EmployeeFactory(), EmployeeFactory()]
    with django_capture_on_commit_callbacks(execute=False):
        runs = noop_runs_start(people)
    statuses = list(Task.objects.filter(run_id__in=runs, action="noop").values_list("status", flat=True))
    assert statuses == [TaskStatus.QUEUED] * 6
