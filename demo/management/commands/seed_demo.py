"""`manage.py seed_demo`: a believable demo company, Helix Logistics, with known logins.

About 300 employees in 11 departments at 6 offices on 3 continents, 10 roles, 23 applications
with owners, approval policies of every kind and licenses, about 400 hardware assets in every
status, entitlements, access requests at every stage (some waiting on the `manager` and `owner`
logins) and lifecycle checklists; see `demo.builder` and its parts. Deterministic, all or nothing,
idempotent: when the company is already there nothing is written and the logins are only printed.

The password of every demo login is `portal-demo`. It is for a laptop demo only.
"""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Employee
from demo.builder import DemoNotLoadable, demo_load
from demo.company import DEMO_PASSWORD, DEMO_TOTP_SECRET, LOGINS, MARKER_EMPLOYEE_NUMBER


class Command(BaseCommand):
    help = "Load the Helix Logistics demo company with known logins (idempotent; password: portal-demo)."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the table of logins.")

    def handle(self, *args, **options):
        started = time.monotonic()
        try:
            builder = demo_load(stdout=self.stdout)
        except DemoNotLoadable as leftovers:
            raise CommandError(
                f"The demo company's marker ({MARKER_EMPLOYEE_NUMBER}) is missing, but some of its rows exist "
                f"({leftovers}). Someone edited or partly deleted the demo data; load it into a fresh database "
                "(e.g. `make clean-db`)."
            )
        if builder is None:
            self.stdout.write("The demo company is already loaded; nothing to do.")
        else:
            summary = ", ".join(f"{n} {label}" for label, n in builder.counts.items())
            self.stdout.write(self.style.SUCCESS(f"Loaded the demo company in {time.monotonic() - started:.1f}s: "))
            self.stdout.write(f"  {summary}")
            for note in builder.notes:
                self.stdout.write(f"  {note}")
        if not options["quiet_logins"]:
            self._print_logins()

    def _print_logins(self):
        users = {u.username: u for u in get_user_model().objects.filter(username__in=LOGINS)}
        employees = {e.user_id: e for e in Employee.objects.filter(user__username__in=LOGINS)}
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}; for a laptop demo only):")
        for username, (_key, _group, what) in LOGINS.items():
            user = users.get(username)
            if user is None:
                continue
            person = employees.get(user.pk)
            who = f"{person.full_name}, {person.title}" if person else ""
            where = "/admin/" if user.is_staff else "/"
            self.stdout.write(f"  {username:<9} {where:<8} {what} — {who}")
        self.stdout.write(
            "Staff (itadmin, helpdesk, auditor) also give a second factor: add the demo-only secret "
            f"{DEMO_TOTP_SECRET} to an authenticator app, or run `python manage.py demo_code` for the current code."
        )
