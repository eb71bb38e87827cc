"""A real task worker in a subprocess, for tests and benchmarks about the queue itself.

`QCluster` runs django-q2's `qcluster` command (the one `manage.py qcluster` runs) in a new process
group, against a database and broker of your choosing, waits until it takes work, and can
SIGKILL it with all its children (sentinel, pusher, workers, monitor) and start it again:

    cluster = QCluster(name="portal_rel_1", database=connection.settings_dict,
                       settings_module=worker_settings_module, preload=[__name__])
    with cluster, enqueue_to(cluster):         # started and ready; this process enqueues to it
        services.run_start(...)               # tasks go to the real worker
        cluster.kill()                        # SIGKILL, mid-run
        cluster.start()                       # a fresh cluster on the same queue

`settings_module` is the project's settings for a worker (the root conftest's
`worker_settings_module` fixture names it: the ground does not know the project). The database
is the one given (a test database is fine, as long as it is a file or a server:
an in-memory SQLite database cannot be shared with another process). The broker is Redis when
`redis_url` is given, otherwise the ORM broker in that database. The cluster name is the queue's
name (and the salt that signs its messages): give each concurrent user its own.

Run directly, `python -m portal.testing.worker [--preload MODULE ...]` imports the given modules
after Django is set up (e.g. a test module registering test actions) and runs `qcluster`.
"""

import atexit
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent.parent


class WorkerError(RuntimeError):
    """The worker did not start, or did not stop, in time. The message includes its log's tail."""


@dataclass(frozen=True)
class Deadlines:
    """The engine's timings, shortened for a test. `lifecycle()` is for this process's settings."""

    running: float = 6.0  # a running task whose worker is silent this long is taken over
    queued: float = 8.0  # a queued task not picked up this long is enqueued again
    backoff: float = 0.2  # wait before the second attempt (doubling)
    timeout: int = 4  # django-q: a task running longer is killed (must be < running)
    retry: int = 5  # django-q ORM broker: an unacknowledged message is delivered again after this

    def env(self) -> dict[str, str]:
        return {
            "PORTAL_RUNNING_DEADLINE": str(self.running),
            "PORTAL_QUEUED_DEADLINE": str(self.queued),
            "PORTAL_BACKOFF_BASE": str(self.backoff),
            "Q_TIMEOUT": str(self.timeout),
            "Q_RETRY": str(self.retry),
        }

    def lifecycle(self, base: dict | None = None) -> dict:
        """`settings.LIFECYCLE` with these deadlines, for the process that runs the sweeper."""
        return {
            **(base or {}),
            "RUNNING_DEADLINE": datetime.timedelta(seconds=self.running),
            "QUEUED_DEADLINE": datetime.timedelta(seconds=self.queued),
            "BACKOFF_BASE": datetime.timedelta(seconds=self.backoff),
        }


def database_env(settings_dict: dict) -> dict[str, str]:
    """Environment that points the project's settings at the database of `settings_dict`.

    Raises WorkerError for an in-memory SQLite database, which no other process can open.
    """
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        if not name or name == ":memory:" or "mode=memory" in name:
            raise WorkerError(
                "The SQLite database is in memory; a worker process cannot share it. "
                "Set SQLITE_TEST_PATH to a file (e.g. var/test.sqlite3) for tests with real workers."
            )
        return {"DATABASE_URL": "", "SQLITE_PATH": name}
    if "postgresql" in engine:
        user = quote(settings_dict.get("USER") or "", safe="")
        password = settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return {"DATABASE_URL": f"postgres://{auth}{host}:{port}/{quote(name, safe='')}"}
    raise WorkerError(f"No worker support for database engine {engine}.")


def shareable_database_reason(settings_dict: dict) -> str:
    """Why a worker process cannot use this database ("" when it can)."""
    try:
        database_env(settings_dict)
    except WorkerError as exc:
        return str(exc)
    return ""


class QCluster:
    """One `qcluster` process group. See the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        database: dict,
        settings_module: str,
        redis_url: str = "",
        workers: int = 2,
        deadlines: Deadlines | None = None,  # None: the settings' own (production) timings
        preload: Iterable[str] = (),
        log_path: Path | str | None = None,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.redis_url = redis_url
        self.settings_module = settings_module
        self.workers = workers
        self.deadlines = deadlines
        self.preload = list(preload)
        if log_path is None:
            log_path = Path(tempfile.gettempdir()) / f"qcluster-{name}.log"
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._env = {
            **os.environ,
            **database_env(database),
            **(deadlines.env() if deadlines else {}),
            "DJANGO_SETTINGS_MODULE": settings_module,
            "REDIS_URL": redis_url,
            "Q_CLUSTER_NAME": name,
            "Q_WORKERS": str(workers),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    # --- life cycle ------------------------------------------------------------------
    def start(self, *, wait: bool = True, timeout: float = 60) -> "QCluster":
        """Start the cluster (a no-op if it runs) and, with `wait`, return once it has run a task."""
        if self.alive:
            return self
        self.starts += 1
        argv = [sys.executable, "-m", "portal.testing.worker"]
        for module in self.preload:
            argv += ["--preload", module]
        with open(self.log_path, "a") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(argv)}\n")
            log.flush()
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                argv, cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _started.add(self)
        if wait:
            try:
                self.wait_ready(timeout=timeout)
            except BaseException:
                self.kill()
                raise
        return self

    def wait_ready(self, *, timeout: float = 60) -> None:
        """Block until the cluster has executed a ping task (so it is consuming this queue).

        A ping is sent again every few seconds: with Redis, a frozen or dying consumer blocked in
        BLPOP on the same queue may take one message with it.
        """
        from django_q.models import Task as QTask
        from django_q.tasks import async_task

        pings: list[str] = []
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive:
                raise WorkerError(f"The worker exited with code {self.process.returncode}.\n{self.log_tail()}")
            if len(pings) < 1 + (time.monotonic() - started) // 3:
                with enqueue_to(self):
                    pings.append(
                        async_task("portal.testing.worker.ping", save=True, task_name=f"ping-{time.time_ns()}")
                    )
            if QTask.objects.filter(id__in=pings).exists():
                return
            time.sleep(0.1)
        raise WorkerError(f"The worker did not run a task within {timeout}s.\n{self.log_tail()}")

    def kill(self, *, timeout: float = 15) -> list[int]:
        """SIGKILL every process of the cluster at once, as a crash or the OOM killer would; wait until gone.

        Returns the pids that were killed.
        """
        if self.process is None:
            return []
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._wait_gone(timeout)
        _started.discard(self)
        return pids

    def stop(self, *, timeout: float = 20) -> None:
        """Stop gracefully (SIGTERM: the cluster finishes its current tasks); SIGKILL after `timeout`."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()

    def restart(self, *, wait: bool = True) -> "QCluster":
        self.kill()
        return self.start(wait=wait)

    def __enter__(self) -> "QCluster":
        self.purge()
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        self.purge()

    # --- state -------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """Live (non-zombie) processes of the cluster's process group."""
        if self.process is None:
            return []
        pgid = self.process.pid
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry.name))
        return sorted(found)

    def holds_connection_from(self, port: int) -> bool:
        """Whether a process of this cluster owns the TCP socket bound to local `port` (the client
        end of a connection a peer sees as coming from that port). Linux: /proc/net/tcp and fds."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return True
        return False

    def _wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        while self.pids():
            if time.monotonic() > deadline:
                raise WorkerError(f"Processes {self.pids()} of the worker are still alive after SIGKILL.")
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def purge(self) -> None:
        """Drop every message waiting in this cluster's queue."""
        if self.redis_url:
            import redis

            redis.from_url(self.redis_url).delete(f"django_q:{self.name}:q")
        else:
            from django_q.models import OrmQ

            OrmQ.objects.filter(key=self.name).delete()


@contextlib.contextmanager
def enqueue_to(cluster: QCluster):
    """In this process, send django-q tasks to `cluster`'s queue instead of running them inline.

    Test settings run the queue in sync mode; this switches sync off and adopts the cluster's name
    (queue name and signing salt) for the duration. The broker type follows this process's settings,
    so they must agree with the cluster's (same REDIS_URL, or both on the ORM broker).
    """
    from django_q.conf import Conf

    saved = (Conf.SYNC, Conf.PREFIX, Conf.CLUSTER_NAME)
    Conf.SYNC, Conf.PREFIX, Conf.CLUSTER_NAME = False, cluster.name, cluster.name
    try:
        yield cluster
    finally:
        Conf.SYNC, Conf.PREFIX, Conf.CLUSTER_NAME = saved


def wait_for(
    predicate: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.1,
    every: Callable[[], object] | None = None,
    message: str = "",
):
    """Poll `predicate` until it returns something truthy (returned); call `every` between polls.

    `every` is typically the engine's sweeper (`offboarding.engine.sweep`), run from the test
    process at a test's pace since django-q's scheduler looks for due schedules only every 30 s.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WorkerError(message or f"Condition not met within {timeout}s.")
        if every is not None:
            every()
        time.sleep(interval)


_started: set[QCluster] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a worker behind when the test run or benchmark ends (even on an error)."""
    for cluster in list(_started):
        with contextlib.suppress(Exception):
            os.killpg(cluster.process.pid, signal.SIGKILL)


def ping() -> str:
    """The task `QCluster.wait_ready` sends."""
    return "pong"


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run qcluster after importing extra modules.")
    parser.add_argument("--preload", action="append", default=[], help="Module to import once Django is set up.")
    args = parser.parse_args(argv)
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        parser.error("set DJANGO_SETTINGS_MODULE to the project's worker settings (QCluster does).")
    import importlib

    import django

    django.setup()
    for module in args.preload:
        importlib.import_module(module)
    from django.core.management import execute_from_command_line

    execute_from_command_line([str(ROOT / "manage.py"), "qcluster"])


if __name__ == "__main__":
    main()
