"""Second factor in tests: `client.force_login(user)` signs a staff user in verified, as after a code.

The root conftest installs `force_login_verified` as `django.test.Client.force_login`, so the many tests
that open admin pages with `client.force_login(staff)` keep working with the second factor enforced:
like django-otp's own test helpers, it gives the user a confirmed authenticator app (once) and marks the
session verified by it. A test about enforcement signs in without it: `client.force_login(user,
second_factor=False)`. `totp_code(device)` is the code a device accepts now, for the pages' forms.
"""

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.mfa import totp_code_now

TEST_DEVICE_NAME = "Test authenticator"
_plain_force_login = Client.force_login


totp_code = totp_code_now  # a code the device accepts now (not a replay)


def authenticator_for_tests(user) -> TOTPDevice:
    """The user's confirmed test authenticator app (made the first time)."""
    device = TOTPDevice.objects.filter(user=user, name=TEST_DEVICE_NAME, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TEST_DEVICE_NAME, confirmed=True)
    return device


def force_login_verified(self, user, backend=None, *, second_factor=None):
    """`Client.force_login`, then (for staff, or when `second_factor=True`) a session verified by a test device."""
    _plain_force_login(self, user, backend)
    if second_factor is False or (second_factor is None and not user.is_staff):
        return
    device = authenticator_for_tests(user)
    session = self.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def install() -> None:
    """Make `Client.force_login` sign staff in verified (called once, by the root conftest)."""
    Client.force_login = force_login_verified
