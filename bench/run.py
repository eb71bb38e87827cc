"""Run Portal's benchmarks: `make bench`, i.e. `.venv/bin/python bench/run.py [--sizes 1000,100000]`.

For each size, a child process gets a fresh database (a temporary SQLite file, or the PostgreSQL
database `portal_bench` when DATABASE_URL is set), migrates it, loads `seed_scale --employees N`
and runs every selected benchmark in it. Then each benchmark's report is printed and written to
bench/results/<name>.json (<name>.postgresql.json on PostgreSQL).

Options: --sizes (default 1000,100000), --only NAME[,NAME], --repeat (timed requests per page),
--keep-db DIR (reuse seeded SQLite files in DIR between runs; for working on a benchmark),
--try-sql SQL (run after seeding, e.g. a candidate CREATE INDEX: measure it before writing the
migration; the results are then written as <name>.try.json so they do not pass for the real schema).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_BENCH_DB = "portal_bench"


def bench_env(database: str) -> dict[str, str]:
    """Environment of a worker: production-like settings (DEBUG off) on the given database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        ALLOWED_HOSTS="testserver,localhost,127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    if env.get("DATABASE_URL"):
        env["DATABASE_URL"] = database
    else:
        env["SQLITE_PATH"] = database
    return env


def postgres_url(url: str) -> str:
    """DATABASE_URL with the database name replaced by portal_bench."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{PG_BENCH_DB}"))


def recreate_postgres(url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')


def worker(args) -> None:
    """In the child: set up Django on the prepared database, seed it if needed, run the benchmarks."""
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Employee
    from bench.registry import Context, discover

    seed_seconds = None
    call_command("migrate", verbosity=0, interactive=False)
    if not Employee.objects.filter(employee_number__startswith="S").exists():
        started = time.monotonic()
        call_command("seed_scale", employees=args.size, verbosity=0)
        seed_seconds = round(time.monotonic() - started, 1)
    from django.db import connection

    for statement in args.try_sql:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE")

    ctx = Context(size=args.size, vendor=connection.vendor, repeat=args.repeat, seed_seconds=seed_seconds)
    registry = discover()
    out = {"size": args.size, "vendor": connection.vendor, "seed_seconds": seed_seconds, "benches": {}}
    for name in args.only:
        started = time.monotonic()
        out["benches"][name] = registry[name]().run(ctx)
        out["benches"][name]["bench_seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(out, default=str))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000", help="Company sizes (employees), comma-separated.")
    parser.add_argument("--only", default="", help="Benchmarks to run, comma-separated (default: all).")
    parser.add_argument("--repeat", type=int, default=5, help="Timed requests per page (after one warm-up).")
    parser.add_argument("--keep-db", default="", help="Directory to keep (and reuse) the seeded SQLite files.")
    parser.add_argument(
        "--try-sql",
        action="append",
        default=[],
        metavar="SQL",
        help="A statement to run after seeding, e.g. a candidate index (IF NOT EXISTS, with --keep-db). Repeatable.",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

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

    by_size: dict[int, dict] = {}
    tmp = tempfile.TemporaryDirectory(prefix="portal-bench-")
    keep = Path(args.keep_db) if args.keep_db else None
    pg_url = os.environ.get("DATABASE_URL", "")
    for size in sizes:
        if pg_url:
            database = postgres_url(pg_url)
            recreate_postgres(database)
        else:
            directory = keep or Path(tmp.name)
            directory.mkdir(parents=True, exist_ok=True)
            database = str(directory / f"bench_{size}.sqlite3")
            if keep is None:
                for suffix in ("", "-wal", "-shm"):
                    Path(database + suffix).unlink(missing_ok=True)
        out = Path(tmp.name) / f"result_{size}.json"
        print(
            f"size {size}: preparing {'PostgreSQL ' + PG_BENCH_DB if pg_url else database} and running ...", flush=True
        )
        started = time.monotonic()
        subprocess.run(
            [sys.executable, __file__, "--worker", "--size", str(size), "--out", str(out), "--repeat", str(args.repeat),
             "--only", ",".join(args.only), *(f"--try-sql={sql}" for sql in args.try_sql)],
            env=bench_env(database),
            cwd=ROOT,
            check=True,
        )  # fmt: skip
        by_size[size] = json.loads(out.read_text())
        seeded = by_size[size]["seed_seconds"]
        print(
            f"size {size}: done in {time.monotonic() - started:.0f}s"
            + (f" (seed_scale {seeded}s)" if seeded is not None else " (database reused)"),
            flush=True,
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    vendor = next(iter(by_size.values()))["vendor"]
    for name in args.only:
        from bench.registry import REGISTRY

        doc, table = REGISTRY[name]().report({s: by_size[s]["benches"][name] for s in sizes})
        doc.update(
            database=vendor,
            try_sql=args.try_sql,
            seed_seconds={s: by_size[s]["seed_seconds"] for s in sizes},
            python=sys.version.split()[0],
            run_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        # SQLite (the default stack) writes <name>.json; PostgreSQL <name>.postgresql.json beside it.
        path = RESULTS / (f"{name}.json" if vendor == "sqlite" else f"{name}.{vendor}.json")
        if args.try_sql:
            path = path.with_suffix(".try.json")
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\n== {name} ({vendor}; sizes {', '.join(map(str, sizes))}) -> {path.relative_to(ROOT)}")
        print(table)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
