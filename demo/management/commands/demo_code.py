"""Print the current authenticator-app code of the demo staff logins (demo only).

Only devices that hold the README's published demo secret are read: a real person's device never is,
so on a database where someone enrolled their own phone this prints nothing for them.
"""

import base64

from django.core.management.base import BaseCommand, CommandError
from django_otp.plugins.otp_totp.models import TOTPDevice

from demo.company import DEMO_TOTP_SECRET, LOGINS
from portal.mfa import totp_code_now


class Command(BaseCommand):
    help = "Print the current second-factor code of the demo staff logins (they share the demo-only secret)."

    def handle(self, *args, **options):
        key = base64.b32decode(DEMO_TOTP_SECRET).hex()
        devices = list(
            TOTPDevice.objects.filter(user__username__in=LOGINS, key=key, confirmed=True)
            .select_related("user")
            .order_by("user__username")
        )
        if not devices:
            raise CommandError(
                "No demo staff login has the demo authenticator; load the demo with `manage.py seed_demo`."
            )
        for device in devices:
            self.stdout.write(f"{device.user.username:<9} {totp_code_now(device)}")
