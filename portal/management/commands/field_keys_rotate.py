"""`python manage.py field_keys_rotate [--batch-size N] [--reindex]`: re-encrypt under the current key."""

from django.core.management.base import BaseCommand, CommandError

from portal.crypto import FieldDecryptionError
from portal.field_keys import blind_indexes_rebuild, field_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value (base and history tables) not written with the first key of "
        "PORTAL_FIELD_KEYS, N rows a transaction. Resumable: run it again after an interruption. "
        "--reindex also recomputes the blind indexes (after PORTAL_BLIND_INDEX_KEY changed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help="Rows per transaction (default 1000).")
        parser.add_argument("--reindex", action="store_true", help="Also recompute every blind index.")

    def handle(self, *args, batch_size=1000, reindex=False, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            done = field_keys_rotate(batch_size=batch_size, progress=self.stdout.write)
            if reindex:
                blind_indexes_rebuild(batch_size=batch_size, progress=self.stdout.write)
        except FieldDecryptionError as exc:
            raise CommandError(f"Stopped: {exc} Rows done so far stay done; run the command again.") from exc
        self.stdout.write(self.style.SUCCESS(f"Done: {sum(done.values())} rows re-encrypted."))
