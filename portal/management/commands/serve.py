"""`manage.py serve`: the web server and the task worker together, stopped together.

`make run` ends with this command. It starts `runserver` and `qcluster` as child
processes, each in its own process group, and on Ctrl-C (SIGINT), SIGTERM or SIGHUP
stops both: politely first (SIGTERM to each leader; qcluster then stops its
workers, the autoreloader its server child), then SIGKILL to each whole process
group after a grace period, so no orphans are left behind. If either child exits on its own (port taken,
database missing), the other is stopped and the command fails with the reason.

Companions: a higher app adds processes to start beside them (`companion_add` in its
`AppConfig.ready()`; the demo adds its target systems, `manage.py demo_targets`). They are
started, watched and stopped exactly like the web server and the worker; `--no-companions`
leaves them out.

Links in emails (`settings.PORTAL_BASE_URL`) point at the address served: both children get
`PORTAL_BASE_URL=http://HOST:PORT` unless the environment already sets it (a proxy's public address wins).
"""

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The hook (see the module docstring): each builder gets the web server's port and returns
# {name: manage.py arguments} of the processes to start beside it ({} for none).
_companions: list[Callable[[int], dict[str, list[str]]]] = []


def companion_add(build: Callable[[int], dict[str, list[str]]]) -> None:
    """Have `serve` also start the processes `build(web_port)` names (adding the same builder twice is a no-op)."""
    if build not in _companions:
        _companions.append(build)


def companion_commands(addrport: str) -> dict[str, list[str]]:
    """{name: manage.py arguments} of every companion for a web server at `addrport`."""
    port = int(served_base_url(addrport).rsplit(":", 1)[1])
    commands: dict[str, list[str]] = {}
    for build in _companions:
        commands.update(build(port))
    return commands


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux only: the child gets SIGTERM if this command is killed without a chance to clean up."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        except OSError:
            pass


def served_base_url(addrport: str) -> str:
    """The address people reach `runserver addrport` at, as `http://host:port`.

    Accepts what runserver accepts: "8000", "host:8000", "[::1]:8000". A wildcard host (0.0.0.0, ::)
    listens on every interface, so links name this machine (`socket.getfqdn()`) instead. Raises
    CommandError, in plain words, for anything else.
    """
    match = re.fullmatch(r"(?:(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>\d{1,5})", addrport.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise CommandError(f"Give the address as PORT or HOST:PORT (e.g. 127.0.0.1:8000), not {addrport!r}.")
    host = match["host"] or "127.0.0.1"
    bare = host.strip("[]")
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(bare).is_unspecified:
            host = socket.getfqdn()
    return f"http://{host}:{int(match['port'])}"


def child_env(addrport: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the web server and worker: `environ` (default: this process's), plus
    `PORTAL_BASE_URL` for the served address when `environ` does not set one (a set one wins)."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("PORTAL_BASE_URL", "").strip():
        env["PORTAL_BASE_URL"] = served_base_url(addrport)
    return env


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class Command(BaseCommand):
    help = "Run the web server and the django-q2 worker together until Ctrl-C, then stop both."

    def add_arguments(self, parser):
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="Where the web server listens (127.0.0.1:8000)."
        )
        parser.add_argument("--noreload", action="store_true", help="Do not restart the web server on code changes.")
        parser.add_argument(
            "--grace", type=float, default=10.0, help="Seconds to wait for a clean stop before killing (10)."
        )
        parser.add_argument(
            "--no-companions",
            action="store_true",
            help="Start only the web server and the worker, not the processes apps add (the demo's target systems).",
        )

    def handle(self, *args, addrport: str, noreload: bool, grace: float, no_companions: bool, **options):
        env = child_env(addrport)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            "web": [*manage, "runserver", addrport, *(["--noreload"] if noreload else [])],
            "worker": [*manage, "qcluster"],
        }
        companions = {} if no_companions else companion_commands(addrport)
        commands.update({name: [*manage, *argv] for name, argv in companions.items()})
        stop_requested: list[int] = []

        def request_stop(signum, frame):
            stop_requested.append(signum)

        previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
        procs: dict[str, subprocess.Popen] = {}
        try:
            for name, command in commands.items():
                procs[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                    command, env=env, start_new_session=True, preexec_fn=_die_with_parent
                )
            also = "".join(f", {name} (pid {procs[name].pid})" for name in companions)
            self.stdout.write(
                f"Portal: web at {served_base_url(addrport)}/ (pid {procs['web'].pid}) and task worker "
                f"(pid {procs['worker'].pid}){also}; links in emails start with {env['PORTAL_BASE_URL']}. "
                f"Press Ctrl-C to stop {'all' if companions else 'both'}."
            )
            exited = None
            while not stop_requested and exited is None:
                exited = next((name for name, proc in procs.items() if proc.poll() is not None), None)
                if exited is None:
                    time.sleep(0.2)
        finally:
            self._stop(procs, grace)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        if exited is not None and not stop_requested:
            raise CommandError(
                f"The {exited} process exited with code {procs[exited].returncode}; stopped the "
                f"{'others' if len(procs) > 2 else 'other one'} too."
            )
        self.stdout.write(f"Portal: web server, task worker{''.join(f', {n}' for n in companions)} stopped.")

    def _stop(self, procs: dict[str, subprocess.Popen], grace: float) -> None:
        """SIGTERM each leader (qcluster then stops its own workers), wait up to `grace` seconds,
        then SIGKILL whatever is left of each process group."""
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is still alive in either group (a leader that ignored SIGTERM, a worker
        # process its leader left behind) is killed, so nothing outlives this command.
        for proc in procs.values():
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.stderr.write(f"Process {proc.pid} did not stop even after SIGKILL.")
