"""`manage.py signin_unlock --username U | --address A`: lift a sign-in lock before its cool-off ends."""

from django.core.management.base import BaseCommand, CommandError

from portal.signin import signin_unlock


class Command(BaseCommand):
    help = "Lift the sign-in lock (and clear the failure count) of a username and/or a client address."

    def add_arguments(self, parser):
        parser.add_argument("--username", help="The username whose lock to lift (any case).")
        parser.add_argument("--address", help="The client address whose lock to lift, e.g. 10.0.0.9.")

    def handle(self, *args, username=None, address=None, **options):
        if not (username or address):
            raise CommandError("Name what to unlock: --username, --address, or both.")
        signin_unlock(username=username, address=address)
        unlocked = " and ".join(
            f"{kind} {value}" for kind, value in (("username", username), ("address", address)) if value
        )
        self.stdout.write(f"Unlocked {unlocked}.")
