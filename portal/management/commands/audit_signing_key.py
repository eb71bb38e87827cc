"""`python manage.py audit_signing_key`: print a new Ed25519 key pair for signing audit checkpoints."""

from django.core.management.base import BaseCommand

from portal.audit_keys import signing_key_new


class Command(BaseCommand):
    help = (
        "Print a new Ed25519 key pair: set the private key as PORTAL_AUDIT_SIGNING_KEY; "
        "keep the public key with your exports."
    )

    def handle(self, *args, **options):
        private, public = signing_key_new()
        self.stdout.write(f"PORTAL_AUDIT_SIGNING_KEY={private}")
        self.stdout.write(f"# public key (for PORTAL_AUDIT_VERIFY_KEYS after a rotation, and for auditors): {public}")
