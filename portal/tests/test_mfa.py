"""The second factor through the pages: enrolment on first sign-in, verification, recovery codes (hashed),
throttling, devices listed and removed by their owner and by IT, self-service opt-in, each step audited."""

import hashlib
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import mfa
from portal.models import AuditEvent, RecoveryCode, RecoveryCodeDevice
from portal.testing.mfa import totp_code

pytestmark = pytest.mark.django_db

ENROL = reverse("mfa:enrol")
VERIFY = reverse("mfa:verify")


def password_sign_in(client, user, password, page="/admin/login/"):
    response = client.post(page, {"username": user.username, "password": password, "next": "/admin/"})
    assert response.status_code == 302, response.content.decode()[:500]
    return response


def actions(user) -> list[str]:
    return list(
        AuditEvent.objects.filter(target_type="auth.User", target_id=str(user.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )


def enrolled(client, user, password) -> tuple[TOTPDevice, list[str]]:
    """Sign in with the password, enrol an authenticator app; the device and the recovery codes shown."""
    password_sign_in(client, user, password)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(ENROL, {"token": totp_code(device), "next": "/admin/"})
    assert response.status_code == 200
    codes = re.findall(
        r"<code class=\"mono\">([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code>", response.content.decode()
    )
    device.refresh_from_db()
    return device, codes


def make_user(username, password="unused-password", **extra):
    return get_user_model().objects.create_user(username=username, password=password, **extra)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Sign-in failure counts and locks live in the cache: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def staff(groups, password):
    user = make_user("sam", password, is_staff=True)
    user.groups.add(groups["IT admin"])
    return user


# --- Enrolment on first sign-in ---------------------------------------------------------------------


def test_staff_without_a_device_is_sent_to_enrol_and_sees_a_qr_code_and_the_secret(client, staff, password):
    password_sign_in(client, staff, password)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{ENROL}?next=%2Fadmin%2F"

    page = client.get(response["Location"]).content.decode()
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    assert "<svg" in page and 'aria-label="QR code for your authenticator app"' in page
    assert mfa.totp_secret_text(device) in page
    assert not re.search(r"(src|href)=\"https?://", page), "the enrolment page loads nothing from elsewhere"


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)
def test_enrolment_confirms_with_a_code_shows_recovery_codes_once_and_opens_the_admin(client, staff, password):
    password_sign_in(client, staff, password)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=staff, confirmed=False)

    wrong = client.post(ENROL, {"token": "000000" if totp_code(device) != "000000" else "111111"})
    assert mfa.WRONG_CODE in wrong.content.decode()
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get("/admin/").status_code == 302

    response = client.post(ENROL, {"token": totp_code(device), "next": "/admin/"})
    codes = re.findall(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", response.content.decode())
    assert len(codes) == mfa.RECOVERY_CODE_COUNT
    assert "not shown again" in response.content.decode()
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get("/admin/").status_code == 200
    assert actions(staff) == ["second_factor_failed", "second_factor_enrolled", "recovery_codes_issued"]
    # The devices page tells how many are left, never the codes again.
    page = client.get(reverse("mfa:devices")).content.decode()
    assert "<strong>10</strong> unused recovery codes" in page
    assert not any(code in page for code in codes)


def test_a_second_device_needs_a_verified_session(client, staff, password):
    enrolled(client, staff, password)
    client.logout()
    password_sign_in(client, staff, password)
    response = client.get(ENROL)
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)


# --- Recovery codes are stored hashed ---------------------------------------------------------------


def test_recovery_codes_are_stored_as_sha256_digests_only(client, staff, password):
    _device, codes = enrolled(client, staff, password)
    assert len(codes) == 10
    digests = set(RecoveryCode.objects.filter(device__user=staff).values_list("digest", flat=True))
    normalised = [code.replace("-", "") for code in codes]
    assert digests == {hashlib.sha256(code.encode()).hexdigest() for code in normalised}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {RecoveryCode._meta.db_table}")  # noqa: S608
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert not any(code in stored or plain in stored for code, plain in zip(codes, normalised, strict=True))


def test_a_recovery_code_signs_in_once(client, staff, password):
    _device, codes = enrolled(client, staff, password)
    client.logout()
    password_sign_in(client, staff, password)
    response = client.post(VERIFY, {"token": codes[3].upper().replace("-", " "), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert actions(staff)[-1] == "recovery_code_used"
    assert AuditEvent.objects.filter(action="recovery_code_used").get().detail["codes_left"] == 9

    client.logout()
    password_sign_in(client, staff, password)
    again = client.post(VERIFY, {"token": codes[3]})
    assert mfa.WRONG_CODE in again.content.decode()
    assert client.get("/admin/").status_code == 302


# --- Verification, wrong codes and throttling -------------------------------------------------------


def test_verify_with_the_app_and_a_wrong_code_is_refused_in_one_plain_message(client, staff, password):
    device, _codes = enrolled(client, staff, password)
    client.logout()
    password_sign_in(client, staff, password)
    assert client.get("/admin/")["Location"] == f"{VERIFY}?next=%2Fadmin%2F"

    wrong_app = client.post(VERIFY, {"token": "12345"}).content.decode()
    with override_settings(OTP_TOTP_THROTTLE_FACTOR=0, OTP_STATIC_THROTTLE_FACTOR=0):
        wrong_recovery = client.post(VERIFY, {"token": "aaaa-bbbb-cccc-dddd"}).content.decode()
    assert mfa.WRONG_CODE in wrong_app and mfa.WRONG_CODE in wrong_recovery
    assert client.get("/admin/").status_code == 302
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    device.refresh_from_db()

    response = client.post(VERIFY, {"token": totp_code(device), "next": "/admin/"})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert actions(staff)[-3:] == ["second_factor_failed", "second_factor_failed", "second_factor_verified"]


def test_wrong_codes_are_throttled_even_the_right_one_waits(client, staff, password):
    device, _codes = enrolled(client, staff, password)
    client.logout()
    password_sign_in(client, staff, password)
    client.post(VERIFY, {"token": "000001"})
    device.refresh_from_db()
    response = client.post(VERIFY, {"token": totp_code(device)})
    assert "Too many wrong codes" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    assert AuditEvent.objects.filter(action="second_factor_failed").order_by("id").last().detail["throttled"] is True


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)
def test_repeated_wrong_codes_lock_the_account_like_wrong_passwords(client, staff, password, settings):
    enrolled(client, staff, password)
    client.logout()
    password_sign_in(client, staff, password)
    for _ in range(settings.SIGN_IN_THROTTLE["FAILURE_LIMIT"]):
        client.post(VERIFY, {"token": "000001"})
    assert "Too many failed sign-ins for this account" in client.post(VERIFY, {"token": "000002"}).content.decode()
    client.logout()
    refused = client.post("/admin/login/", {"username": staff.username, "password": password})
    assert "Too many failed sign-ins for this account" in refused.content.decode()
    assert actions(staff).count("sign_in_locked") == 1


def test_the_verify_page_says_nothing_to_a_visitor(client):
    response = client.get(VERIFY)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_wrong_password_reads_the_same_for_a_user_who_exists_and_one_who_does_not(client, staff):
    known = client.post("/admin/login/", {"username": staff.username, "password": "wrong"}).content.decode()
    unknown = client.post("/admin/login/", {"username": "nobody-here", "password": "wrong"}).content.decode()
    error = re.compile(r'<p class="errornote">\s*(.*?)\s*</p>', re.S)
    assert error.search(known).group(1) == error.search(unknown).group(1)


# --- Devices: listed and removed by their owner, and by IT ------------------------------------------


def test_owner_lists_and_removes_their_device_and_the_session_it_verified_is_verified_no_more(client, staff, password):
    device, _codes = enrolled(client, staff, password)
    page = client.get(reverse("mfa:devices")).content.decode()
    assert "Authenticator app" in page and device.key not in page
    response = client.post(reverse("mfa:device_remove", args=["totp", device.pk]))
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not RecoveryCodeDevice.objects.filter(user=staff).exists(), "the codes go with the last device"
    assert client.get("/admin/")["Location"].startswith(ENROL)
    assert actions(staff)[-2:] == ["second_factor_removed", "second_factor_removed"]


def test_someone_elses_device_is_404(client, staff, password):
    other = make_user("olga")
    theirs = TOTPDevice.objects.create(user=other, name="Olga's phone", confirmed=True)
    client.force_login(staff)
    assert client.post(reverse("mfa:device_remove", args=["totp", theirs.pk])).status_code == 404
    assert client.post(reverse("mfa:device_remove", args=["nonsense", theirs.pk])).status_code == 404
    assert client.post(reverse("mfa:device_remove", args=["totp", "x"])).status_code == 404
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()


def test_it_admin_removes_a_staff_device_in_the_admin_and_the_event_names_them(client, it_admin, helpdesk):
    lost = TOTPDevice.objects.create(user=helpdesk, name="Lost phone", confirmed=True)
    client.force_login(helpdesk)
    url = reverse("admin:otp_totp_totpdevice_delete", args=[lost.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403, "helpdesk may not remove devices"

    client.force_login(it_admin)
    listing = client.get(reverse("admin:otp_totp_totpdevice_changelist")).content.decode()
    assert "Lost phone" in listing and lost.key not in listing
    assert lost.key not in client.get(reverse("admin:otp_totp_totpdevice_change", args=[lost.pk])).content.decode()
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(pk=lost.pk).exists()
    event = AuditEvent.objects.get(action="second_factor_removed", target_id=str(helpdesk.pk))
    assert event.actor == it_admin and event.detail["name"] == "Lost phone"


# --- Self-service users may opt in -------------------------------------------------------------------


def test_self_service_user_is_not_asked_until_they_enrol_then_at_every_sign_in(client, password):
    user = make_user("erin", password)
    password_sign_in(client, user, password, page="/login/")
    assert client.get(reverse("mfa:devices")).status_code == 200
    assert client.get("/").status_code == 200, "not forced"

    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    client.post(ENROL, {"token": totp_code(device)})
    assert client.get("/").status_code == 200
    client.logout()

    password_sign_in(client, user, password, page="/login/")
    assert client.get("/")["Location"] == f"{VERIFY}?next=%2F"
    device.refresh_from_db()
    client.post(VERIFY, {"token": totp_code(device)})
    assert client.get("/").status_code == 200


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)
def test_a_self_service_user_who_removes_their_last_device_has_opted_out_at_once(client, password):
    user = make_user("erin", password)
    password_sign_in(client, user, password, page="/login/")
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    client.post(ENROL, {"token": totp_code(device)})
    assert client.get("/").status_code == 200
    response = client.post(reverse("mfa:device_remove", args=["totp", device.pk]))
    assert response.status_code == 302
    assert client.get("/").status_code == 200, "sent to enrol again in the same session"


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)
def test_the_enrolment_form_sent_twice_answers_with_a_sentence_not_an_error(client, staff, password):
    """Two tabs, or a double click: the second confirmation finds the device set up already."""
    password_sign_in(client, staff, password)
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=staff, confirmed=False)
    code = totp_code(device)
    assert mfa.totp_enrolment_confirm(request=_request(client, staff), device=device, token=code)
    with pytest.raises(mfa.ValidationError, match="set up already"):
        mfa.totp_enrolment_confirm(request=_request(client, staff), device=device, token=code)
    assert TOTPDevice.objects.filter(user=staff, confirmed=True).count() == 1


def _request(client, user):
    from django.test import RequestFactory

    request = RequestFactory().post(ENROL)
    request.user = user
    request.session = client.session
    return request


# --- Who may open the pages ----------------------------------------------------------------------------


def _mfa_urls():
    from django.urls import get_resolver

    _prefix, sub = get_resolver().namespace_dict["mfa"]
    names = sorted(p.name for p in sub.url_patterns)
    assert names == ["device_remove", "devices", "enrol", "recovery_codes", "verify"], "add the new page here"
    return [
        reverse("mfa:device_remove", args=["totp", 1]),
        *(reverse(f"mfa:{n}") for n in names if n != "device_remove"),
    ]


@pytest.mark.parametrize("url", _mfa_urls())
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_visitor_is_sent_to_sign_in_from_every_second_factor_page(client, url, method):
    response = getattr(client, method)(url)
    assert response.status_code in (302, 405)
    if response.status_code == 302:
        assert response["Location"].startswith("/login/?next=")


def test_passkey_endpoints_refuse_a_visitor_without_passwordless_sign_in(client):
    response = client.post(reverse("otp_webauthn:credential-authentication-begin"))
    assert response.status_code in (400, 401, 403)
    response = client.post(reverse("otp_webauthn:credential-registration-begin"))
    assert response.status_code in (401, 403)
