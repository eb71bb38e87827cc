"""`manage.py demo_code` prints the demo staff logins' current codes, and reads only the demo-only secret."""

import base64
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from demo.company import DEMO_TOTP_SECRET

pytestmark = pytest.mark.django_db


def test_prints_a_code_the_demo_device_accepts():
    user = get_user_model().objects.create_user(username="itadmin", is_staff=True)
    device = TOTPDevice.objects.create(user=user, key=base64.b32decode(DEMO_TOTP_SECRET).hex(), confirmed=True)
    out = io.StringIO()
    call_command("demo_code", stdout=out)
    username, code = out.getvalue().split()
    assert username == "itadmin"
    assert device.verify_token(code)
    out = io.StringIO()
    call_command("demo_code", stdout=out)
    assert TOTPDevice.objects.get(pk=device.pk).verify_token(out.getvalue().split()[1]), "the next code, not a replay"


def test_a_real_persons_device_is_never_read():
    user = get_user_model().objects.create_user(username="itadmin", is_staff=True)
    TOTPDevice.objects.create(user=user, confirmed=True)  # a random secret: someone enrolled their own phone
    with pytest.raises(CommandError, match="No demo staff login has the demo authenticator"):
        call_command("demo_code", stdout=io.StringIO())
