"""The staff second factor in a real Chromium: enrolment on first sign-in with an authenticator app (the
secret read off the page, the code computed as a phone would), sign-in with a code, and a passkey
registered and used through Chromium's virtual authenticator (DevTools protocol `WebAuthn` domain).

Every page is checked for Content-Security-Policy violations by the `new_page` fixture.
"""

import base64

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from portal.models import AuditEvent
from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in
from portal.testing.mfa import totp_code

pytestmark = pytest.mark.browser


@pytest.fixture
def newcomer(groups):
    """IT staff who has never signed in: no second-factor device yet."""
    user = get_user_model().objects.create_user(username="nina", password="not-used", is_staff=True)
    user.groups.add(groups["IT admin"])
    return user


@pytest.fixture
def newcomer_password(newcomer, password):
    newcomer.set_password(password)
    newcomer.save()
    return password


def events(user) -> list[tuple[str, str]]:
    rows = AuditEvent.objects.filter(target_type="auth.User", target_id=str(user.pk)).order_by("id")
    return [(e.action, e.detail.get("kind", "")) for e in rows]


def sign_out(page, live_server):
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(f"{live_server.url}/login/")


def test_staff_enrols_an_authenticator_app_on_first_sign_in_then_signs_in_with_a_code(
    live_server, new_page, newcomer, newcomer_password
):
    page = new_page(viewport=PHONE)
    sign_in(page, f"{live_server.url}/admin/login/?next=/admin/", newcomer.username, newcomer_password)
    assert page.url.startswith(f"{live_server.url}/account/second-factor/enrol/")
    assert page.get_by_role("heading", name="Set up a second factor").is_visible()
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    scroll_width, inner_width = no_horizontal_overflow(page)
    assert scroll_width <= inner_width, "the enrolment page scrolls sideways on a phone"
    page.screenshot(path=ARTIFACTS / "mfa-enrol-phone.png", full_page=True)

    # What a phone does with the secret typed from the page.
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Code from the app").fill(f"{TOTP(key).token():06d}")
    page.get_by_role("button", name="Confirm the app").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    assert page.get_by_role("list", name="Recovery codes").get_by_role("listitem").count() == 10
    page.get_by_role("link", name="I have saved them, continue").click()
    page.wait_for_url(f"{live_server.url}/admin/")

    sign_out(page, live_server)
    sign_in(page, f"{live_server.url}/admin/login/?next=/admin/", newcomer.username, newcomer_password)
    assert page.get_by_role("heading", name="Confirm it is you").is_visible()
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    assert page.get_by_text("That code is not right").is_visible()

    device = TOTPDevice.objects.get(user=newcomer, confirmed=True)
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None  # skip the 1 s wait
    device.save()
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    assert [a for a, _ in events(newcomer)] == [
        "second_factor_enrolled",
        "recovery_codes_issued",
        "second_factor_failed",
        "second_factor_verified",
    ]


def _virtual_authenticator(page):
    """A platform authenticator in this tab that answers at once with user verification (CDP WebAuthn)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
    return cdp, authenticator


def test_staff_registers_a_passkey_on_first_sign_in_then_signs_in_with_it(
    live_server, new_page, newcomer, newcomer_password
):
    page = new_page()
    cdp, authenticator = _virtual_authenticator(page)
    sign_in(page, f"{live_server.url}/admin/login/?next=/admin/", newcomer.username, newcomer_password)
    assert page.url.startswith(f"{live_server.url}/account/second-factor/enrol/")

    page.get_by_role("button", name="Register a passkey").click()
    page.wait_for_url(f"{live_server.url}/account/second-factor/")
    assert page.get_by_role("cell", name="Passkey").is_visible()
    assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]) == 1
    assert WebAuthnCredential.objects.filter(user=newcomer, confirmed=True).count() == 1
    page.get_by_role("button", name="Issue recovery codes").click()
    assert page.get_by_role("list", name="Recovery codes").get_by_role("listitem").count() == 10
    page.goto(f"{live_server.url}/admin/")
    assert page.url == f"{live_server.url}/admin/", "the passkey registration verified this session"

    sign_out(page, live_server)
    sign_in(page, f"{live_server.url}/admin/login/?next=/admin/", newcomer.username, newcomer_password)
    assert page.get_by_role("heading", name="Confirm it is you").is_visible()
    page.get_by_role("button", name="Use my passkey").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.get_by_role("heading", name="IT operations").is_visible()
    assert events(newcomer) == [
        ("second_factor_enrolled", "passkey"),
        ("recovery_codes_issued", ""),
        ("second_factor_verified", "passkey"),
    ]

    # Removed by its owner, the passkey no longer signs in: the next sign-in asks to enrol again.
    page.goto(f"{live_server.url}/account/second-factor/")
    page.get_by_role("button", name="Remove").first.click()
    page.wait_for_load_state()
    assert not WebAuthnCredential.objects.filter(user=newcomer).exists()
    page.goto(f"{live_server.url}/admin/")
    assert page.url.startswith(f"{live_server.url}/account/second-factor/enrol/")
