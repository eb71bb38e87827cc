"""`manage.py scim_connection_create --name Okta`: a SCIM connection, its token printed once."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.scim.services import scim_connection_create


class Command(BaseCommand):
    help = "Create a SCIM connection for an identity provider and print its bearer token (shown this once)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="e.g. Okta, Entra ID")
        parser.add_argument("--username-domain", default="", help="for short userNames: jdoe means jdoe@DOMAIN")
        parser.add_argument("--quiet", action="store_true", help="print only the token (for scripts)")

    def handle(self, *args, name, username_domain, quiet, **options):
        try:
            connection, token = scim_connection_create(name=name, username_domain=username_domain, acting_user=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if quiet:
            self.stdout.write(token)
            return
        self.stdout.write(f"SCIM connection {connection.name} created; it acts as {connection.service_user.username}.")
        self.stdout.write("Bearer token (copy it now, Portal keeps only its hash):")
        self.stdout.write(token)
