"""`manage.py usage_import --source okta|entra|app_csv [--application NAME] FILE`: read here, with progress."""

import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Application, UsageImport, UsageSource
from accounts.services import usage


class Command(BaseCommand):
    help = (
        "Read a sign-in log (Okta System Log JSON, Entra ID sign-in CSV/JSON) or one application's CSV "
        "(email, last active) into last use, printing progress. A bad line refuses the file; nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file to read.")
        parser.add_argument("--source", required=True, choices=[s.value for s in usage.FILE_SOURCES])
        parser.add_argument("--application", help="For --source app_csv: the application's name (or an alias).")

    def handle(self, *args, path, source, application=None, **options):
        app = None
        if application:
            key = application.strip().lower()
            app = next(
                (a for a in Application.objects.all() if key in {n.lower() for n in [a.name, *(a.aliases or [])]}),
                None,
            )
            if app is None:
                raise CommandError(f"No application is called {application!r} (by name or alias).")
        started = time.monotonic()

        def progress(done: int, events: int) -> None:
            self.stdout.write(
                f"  {done / 1048576:,.1f} MB read, {events:,} records ({time.monotonic() - started:.0f} s)"
            )

        try:
            result = usage.usage_import_path(source=source, path=path, application=app, progress=progress)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        except Exception as exc:
            if hasattr(exc, "message_dict") or hasattr(exc, "messages"):
                raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None
            raise
        if result.status != UsageImport.Status.DONE:
            raise CommandError(f"{path} was refused, nothing written: {result.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.events_read:,} sign-ins read ({result.events_used:,} used) from {path} as "
                f"{UsageSource(source).label} in {time.monotonic() - started:.1f} s: "
                f"{result.entitlements_updated:,} entitlements' last use moved forward, "
                f"{result.unmatched:,} unmatched pairs."
            )
        )
