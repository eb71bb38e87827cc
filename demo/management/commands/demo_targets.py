"""`manage.py demo_targets`: the demo company's SCIM service and webhook receiver, until SIGTERM or Ctrl-C.

`manage.py serve` (so `make run`) starts it beside the web server and the worker; see `demo.targets`.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from demo.targets import DemoTargets, TargetsNotStarted, target_ports


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise CommandError(f"A port is a number from 1 to 65535, not {value!r}.")
    return int(value)


class Command(BaseCommand):
    help = "Serve the demo's target systems (SCIM 2.0 service, webhook receiver) on 127.0.0.1 until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--scim-port", type=_port, help="The SCIM service's port (default: 8001).")
        parser.add_argument("--webhook-port", type=_port, help="The webhook receiver's port (default: 8002).")

    def handle(self, *args, scim_port, webhook_port, **options):
        try:
            default_scim, default_webhook = target_ports()
        except TargetsNotStarted as exc:
            raise CommandError(str(exc))
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with DemoTargets(scim_port or default_scim, webhook_port or default_webhook) as targets:
                self.stdout.write(targets.summary())
                self.stdout.flush()
                while not stop.wait(0.5):  # a signal handler's set() is seen at the next wake-up
                    pass
        except TargetsNotStarted as exc:
            raise CommandError(str(exc))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Demo targets: stopped.")
