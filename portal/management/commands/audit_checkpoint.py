"""`python manage.py audit_checkpoint`: sign the audit chain's end now (the hourly task does it too)."""

from django.core.management.base import BaseCommand, CommandError

from portal.auditchain import AuditChainError, audit_checkpoint_create


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of the audit chain (Ed25519, PORTAL_AUDIT_SIGNING_KEY) after checking the events "
        "since the last one. Refused, with the reason, without a key, on an empty log or a log that does not verify."
    )

    def handle(self, *args, **options):
        try:
            checkpoint, created = audit_checkpoint_create()
        except AuditChainError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Signed" if created else "Already signed"
        self.stdout.write(
            f"{verb}: the audit chain at seq {checkpoint.seq} ends in {checkpoint.hash} (key {checkpoint.key_id})."
        )
