"""`python manage.py field_key_new`: print a new key for PORTAL_FIELD_KEYS (or PORTAL_BLIND_INDEX_KEY)."""

from django.core.management.base import BaseCommand, CommandError

from portal.crypto import FieldKeyError, blind_index_key_new, field_key_new


class Command(BaseCommand):
    help = (
        "Print a new AES-256 key as id:base64key for PORTAL_FIELD_KEYS: put it first (it writes), keep the old "
        "ones after it, then run `manage.py field_keys_rotate`. --blind-index prints a PORTAL_BLIND_INDEX_KEY."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--id", dest="key_id", help="The key's id: 1 to 16 letters or digits (default k + 8 hex).")
        parser.add_argument("--blind-index", action="store_true", help="Print a PORTAL_BLIND_INDEX_KEY instead.")

    def handle(self, *args, key_id=None, blind_index=False, **options):
        if blind_index:
            self.stdout.write(blind_index_key_new())
            self.stdout.write(
                "# PORTAL_BLIND_INDEX_KEY: changing it later needs `manage.py field_keys_rotate --reindex`."
            )
            return
        try:
            entry = field_key_new(key_id)
        except FieldKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(entry)
        self.stdout.write(
            "# PORTAL_FIELD_KEYS=<this>,<the current keys>: the first writes; then `manage.py field_keys_rotate`."
        )
