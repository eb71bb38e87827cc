"""`python manage.py audit_checkpoint_export [--output FILE]`: the signed checkpoints, one JSON object a line."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from portal.auditchain import checkpoint_export_rows


class Command(BaseCommand):
    help = (
        "Write every signed audit checkpoint as JSON Lines (seq, hash, created_at, key_id, signature), to keep "
        "outside Portal's database; `audit_verify --checkpoints FILE` checks the log against it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", metavar="FILE", help="Write here instead of standard output.")

    def handle(self, *args, output=None, **options):
        try:
            handle = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}.") from exc
        count = 0
        try:
            for row in checkpoint_export_rows():
                handle.write(json.dumps(row, sort_keys=True) + "\n")
                count += 1
        finally:
            if output:
                handle.close()
        if output:
            self.stdout.write(f"{count} checkpoints written to {output}.")
