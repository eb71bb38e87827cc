"""Run Portal's benchmarks: `make bench`, i.e. `.venv/bin/python bench/run.py [--sizes 1000,100000]`.

Each benchmark runs in its own freshly seeded database, so no benchmark measures what another one
left behind (a layoff, a bench manager, extra indexes):

1. Once per size, a child process migrates an empty database and loads `seed_scale --employees N`
   into it: the *seed* (a SQLite file, or the PostgreSQL database `<PORTAL_BENCH_DB>_seed_<N>`).
2. For each benchmark, the seed is copied (SQLite: the file, after a WAL checkpoint; PostgreSQL:
   `CREATE DATABASE <PORTAL_BENCH_DB> TEMPLATE <seed>`) and a fresh child process runs that one
   benchmark in the copy. The copy is dropped afterwards; the seed is kept for the next benchmark.

Then each benchmark's report is printed and written to bench/results/<name>.json (SQLite) or
<name>.postgresql.json. Every result names its stack (database, broker and their versions), the
sizes, how each database was made (`databases`: seeded_from, seed and copy seconds, rows seeded),
the git commit (and whether the tree was dirty), the machine and the date (`result_metadata`).

Options: --sizes (default 1000,100000), --only NAME[,NAME], --repeat (timed requests per page),
--keep-db DIR (keep the seeds between runs and reuse them: SQLite files in DIR; on PostgreSQL the
seed databases are kept), --try-sql SQL (run in each copy before the benchmark, e.g. a candidate
CREATE INDEX: measure it before writing the migration; results are then written as
<name>.try.json so they do not pass for the real schema).

Environment: DATABASE_URL (PostgreSQL; else SQLite), REDIS_URL (Redis broker; else the ORM
broker), PORTAL_BENCH_DB (PostgreSQL database name, default portal_bench: pick your own when
several people bench on one server; the seeds are named after it).
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Keys every result document carries (checked by bench/tests).
METADATA_KEYS = ("benchmark", "stack", "sizes", "databases", "git", "machine", "run_at")


def pg_bench_db() -> str:
    """The PostgreSQL database the benchmarks run in (PORTAL_BENCH_DB, default portal_bench)."""
    name = os.environ.get("PORTAL_BENCH_DB", "") or "portal_bench"
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 40:
        raise SystemExit(f"PORTAL_BENCH_DB must be letters, digits and underscores (≤ 40), not {name!r}.")
    return name


def bench_env(database: str) -> dict[str, str]:
    """Environment of a worker: production-like settings (DEBUG off) on the given database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        # Bench-only keys (production refuses the public dev ones): 32 bytes each, in base64.
        PORTAL_FIELD_KEYS="bench:YmVuY2gtb25seS1maWVsZC1rZXktbm90LTQtcHJvZCE=",
        PORTAL_BLIND_INDEX_KEY="YmVuY2gtb25seS1ibGluZC1pbmRleC1ub3QtNHByb2Q=",
        ALLOWED_HOSTS="testserver,localhost,127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    if env.get("DATABASE_URL"):
        env["DATABASE_URL"] = database
    else:
        env["SQLITE_PATH"] = database
    return env


def postgres_url(url: str, name: str) -> str:
    """DATABASE_URL with the database name replaced by `name`."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(postgres_url(url, "postgres"), autocommit=True)


def pg_exists(url: str, name: str) -> bool:
    with _pg_admin(url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def pg_recreate(url: str, name: str, *, template: str | None = None) -> None:
    """Drop `name` and create it empty, or as a copy of `template`."""
    with _pg_admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def pg_drop(url: str, name: str) -> None:
    with _pg_admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_copy(source: str, target: str) -> None:
    """Copy a (checkpointed) SQLite database file; the target's old WAL files go."""
    for suffix in ("", "-wal", "-shm"):
        Path(target + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, target)


# --- Metadata -------------------------------------------------------------------------------------


def git_state() -> dict:
    """The commit the benchmarks ran on, and whether the work tree had changes (results excluded)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    changes = [line for line in git("status", "--porcelain").splitlines() if line and "bench/results/" not in line[3:]]
    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") or "unknown",
        "dirty": bool(changes),
        "changed_files": len(changes),
    }


def machine_state() -> dict:
    """Where the figures come from: host, CPUs, platform, and how busy the machine was."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "load_average_at_start": load,
    }


def stack_state() -> dict:
    """In a Django child: the database, the broker and their versions."""
    import django
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            db_version = cursor.fetchone()[0]
    else:
        import sqlite3

        db_version = sqlite3.sqlite_version
    stack = {
        "database": connection.vendor,
        "database_version": db_version,
        "broker": "redis" if settings.REDIS_URL else "orm",
        "django": django.get_version(),
    }
    try:
        from importlib.metadata import version

        stack["django_q2"] = version("django-q2")
    except Exception:  # noqa: BLE001 - a version is nice to have, never a reason to fail
        pass
    if settings.REDIS_URL:
        try:
            import redis

            stack["broker_version"] = redis.Redis.from_url(settings.REDIS_URL).info("server")["redis_version"]
        except Exception as exc:  # noqa: BLE001
            stack["broker_version"] = f"unknown ({exc})"
    stack["name"] = f"{connection.vendor}/{stack['broker']}"
    return stack


def result_metadata(*, name: str, stack: dict, sizes: list[int], databases: dict, git: dict, machine: dict) -> dict:
    """The keys (METADATA_KEYS) every result document starts with."""
    return {
        "benchmark": name,
        "stack": stack,
        "sizes": sizes,
        "databases": databases,
        "git": git,
        "machine": machine,
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- Children ---------------------------------------------------------------------------------------


def seed_worker(args) -> None:
    """In a child: migrate the empty seed database and load the synthetic company; write what it holds."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from demo.management.commands.seed_scale import PROPORTIONS, seeded_counts

    call_command("migrate", verbosity=0, interactive=False)
    started = time.monotonic()
    call_command("seed_scale", employees=args.size, verbosity=0)
    seconds = round(time.monotonic() - started, 1)
    # Work the services queued while seeding (emails of the seeded requests): not the benchmarks'.
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out = {"seed_seconds": seconds, "rows": seeded_counts(), "proportions": PROPORTIONS}
    Path(args.out).write_text(json.dumps(out, default=str))


def worker(args) -> None:
    """In a child: set up Django on a fresh copy of the seed and run one benchmark."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.registry import Context, discover
    from portal.testing import mfa

    # Staff pages ask for a second factor: the bench's clients sign staff in verified by a test
    # authenticator, as an admin is after giving the code (the per-request device check is measured).
    mfa.install()

    call_command("migrate", verbosity=0, interactive=False)  # a no-op unless the seed was kept from older code
    for statement in args.try_sql:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE")
    ctx = Context(size=args.size, vendor=connection.vendor, repeat=args.repeat, seed_seconds=None)
    (name,) = args.only
    started = time.monotonic()
    figures = discover()[name]().run(ctx)
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    out = {"size": args.size, "stack": stack_state(), "figures": figures}
    Path(args.out).write_text(json.dumps(out, default=str))


def child(mode: str, *, size: int, out: Path, database: str, args, only: str = "") -> dict:
    command = [sys.executable, __file__, mode, "--size", str(size), "--out", str(out), "--repeat", str(args.repeat)]
    if only:
        command += ["--only", only, *(f"--try-sql={sql}" for sql in args.try_sql)]
    env = bench_env(database)
    if mode == "--seed-worker":
        env["REDIS_URL"] = ""  # what the services enqueue while seeding stays in the seed's ORM queue, then goes
    subprocess.run(command, env=env, cwd=ROOT, check=True)
    return json.loads(out.read_text())


# --- Main ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000", help="Company sizes (employees), comma-separated.")
    parser.add_argument("--only", default="", help="Benchmarks to run, comma-separated (default: all).")
    parser.add_argument("--repeat", type=int, default=5, help="Timed requests per page (after one warm-up).")
    parser.add_argument("--keep-db", default="", help="Keep (and reuse) the seeds: SQLite files in this directory.")
    parser.add_argument(
        "--try-sql",
        action="append",
        default=[],
        metavar="SQL",
        help="A statement to run in each fresh copy before the benchmark, e.g. a candidate index. Repeatable.",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.seed_worker:
        seed_worker(args)
        return 0
    from bench.registry import discover

    names = sorted(discover())
    args.only = [n for n in args.only.split(",") if n] or names
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    if args.worker:
        worker(args)
        return 0
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes must be whole numbers separated by commas, not {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs at least one size of 1 or more")

    git, machine = git_state(), machine_state()
    tmp = tempfile.TemporaryDirectory(prefix="portal-bench-")
    keep = Path(args.keep_db) if args.keep_db else None
    pg_url = os.environ.get("DATABASE_URL", "")
    bench_db = pg_bench_db() if pg_url else ""
    results: dict[str, dict[int, dict]] = {name: {} for name in args.only}
    databases: dict[str, dict[int, dict]] = {name: {} for name in args.only}
    stack: dict = {}
    for size in sizes:
        # 1. The seed of this size: made once, or reused with --keep-db.
        seed_out = Path(tmp.name) / f"seed_{size}.json"
        if pg_url:
            seed_name = f"{bench_db}_seed_{size}"
            seed_db, seeded_from = postgres_url(pg_url, seed_name), f"postgresql database {seed_name}"
            info_file = (keep or Path(tmp.name)) / f"{seed_name}.json"
            reuse = keep is not None and pg_exists(pg_url, seed_name) and info_file.exists()
        else:
            directory = keep or Path(tmp.name)
            directory.mkdir(parents=True, exist_ok=True)
            seed_db = str(directory / f"seed_{size}.sqlite3")
            seeded_from, info_file = f"sqlite file {seed_db}", Path(seed_db + ".json")
            reuse = keep is not None and Path(seed_db).exists() and info_file.exists()
        if reuse:
            seed = json.loads(info_file.read_text()) | {"reused": True}
            print(f"size {size}: reusing the seed {seeded_from} (seeded in {seed['seed_seconds']}s)", flush=True)
        else:
            if pg_url:
                pg_recreate(pg_url, seed_name)
            else:
                for suffix in ("", "-wal", "-shm", ".json"):
                    Path(seed_db + suffix).unlink(missing_ok=True)
            print(f"size {size}: seeding {seeded_from} ...", flush=True)
            seed = child("--seed-worker", size=size, out=seed_out, database=seed_db, args=args) | {"reused": False}
            if keep is not None:
                info_file.parent.mkdir(parents=True, exist_ok=True)
                info_file.write_text(json.dumps(seed))
            print(f"size {size}: seeded in {seed['seed_seconds']}s", flush=True)

        # 2. Each benchmark in its own copy of the seed, in its own process.
        for name in args.only:
            started = time.monotonic()
            if pg_url:
                pg_recreate(pg_url, bench_db, template=seed_name)
                database, copy_name = postgres_url(pg_url, bench_db), f"postgresql database {bench_db}"
            else:
                database = str(Path(tmp.name) / f"bench_{name}_{size}.sqlite3")
                sqlite_copy(seed_db, database)
                copy_name = f"sqlite file (copy) {database}"
            copied = round(time.monotonic() - started, 2)
            print(f"size {size}: {name} in a fresh copy ({copy_name}, {copied}s) ...", flush=True)
            started = time.monotonic()
            out = Path(tmp.name) / f"result_{name}_{size}.json"
            done = child("--worker", size=size, out=out, database=database, args=args, only=name)
            print(f"size {size}: {name} done in {time.monotonic() - started:.0f}s", flush=True)
            stack = done["stack"]
            results[name][size] = done["figures"]
            databases[name][size] = {
                "seeded_from": seeded_from,
                "seed_reused": seed["reused"],
                "seed_seconds": seed["seed_seconds"],
                "copied_to": copy_name,
                "copy_seconds": copied,
                "rows_seeded": seed["rows"],
                "proportions": seed["proportions"],
            }
            if pg_url:
                pg_drop(pg_url, bench_db)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(database + suffix).unlink(missing_ok=True)
        if pg_url and keep is None:
            pg_drop(pg_url, seed_name)

    RESULTS.mkdir(parents=True, exist_ok=True)
    from bench.registry import REGISTRY

    vendor = stack["database"]
    for name in args.only:
        doc, table = REGISTRY[name]().report(results[name])
        doc = result_metadata(
            name=name, stack=stack, sizes=sizes, databases=databases[name], git=git, machine=machine
        ) | {k: v for k, v in doc.items() if k not in METADATA_KEYS}
        doc["try_sql"] = args.try_sql
        # SQLite (the default stack) writes <name>.json; PostgreSQL <name>.postgresql.json beside it.
        path = RESULTS / (f"{name}.json" if vendor == "sqlite" else f"{name}.{vendor}.json")
        if args.try_sql:
            path = path.with_suffix(".try.json")
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\n== {name} ({stack['name']}; sizes {', '.join(map(str, sizes))}) -> {path.relative_to(ROOT)}")
        print(table)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
