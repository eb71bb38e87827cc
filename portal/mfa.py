"""The second factor: who must give one, enrolment, verification, recovery codes and device removal.

Staff (`is_staff`) give a second factor after the password before any page (the admin, and the
self-service pages too, since a staff session is an admin session); self-service users who enrolled a
device do the same from their next sign-in on (opt-in). The factors are django-otp devices: TOTP
(`otp_totp.TOTPDevice`), passkeys (`django_otp_webauthn.WebAuthnCredential`) and single-use
recovery codes (`portal.RecoveryCodeDevice`, hashed). Every enrolment, verification, wrong code,
removal and use of a recovery code writes an audit event on the person's user.
"""

import base64
import contextlib
import hashlib
import io
import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import login as otp_login
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential

from portal.audit import audit_record
from portal.models import AuditEvent, RecoveryCode, RecoveryCodeDevice
from portal.signin import client_address, signin_failure_record, signin_refusal

# Set at sign-in for a self-service user with a confirmed device: they opted in, so they verify too.
OPTED_IN_SESSION_KEY = "portal_second_factor_opted_in"
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 16  # base32 characters: 80 random bits each
TOTP_NAME = "Authenticator app"
WRONG_CODE = "That code is not right. Check the clock on your phone, or use a recovery code."
THROTTLED = "Too many wrong codes. Wait {seconds} seconds, then try again."
API_PREFIX = "/api/v1/"  # JSON answers there; the token page (/api/tokens/) is a page like the others
PRIMARY_MODELS = (TOTPDevice, WebAuthnCredential)
DEVICE_MODELS = (TOTPDevice, WebAuthnCredential, RecoveryCodeDevice)


# --- Who must verify ---------------------------------------------------------------------------------


def second_factor_required(request: HttpRequest) -> bool:
    """True when this signed-in session must be verified: staff always, others once they enrolled."""
    user = request.user
    if not user.is_authenticated:
        return False
    return bool(user.is_staff or request.session.get(OPTED_IN_SESSION_KEY))


def user_has_primary_device(user) -> bool:
    """True when the user has a confirmed authenticator app or passkey (recovery codes alone do not count)."""
    return any(model.objects.filter(user=user, confirmed=True).exists() for model in PRIMARY_MODELS)


def second_factor_note_opt_in(sender, request, user, **kwargs):
    """`user_logged_in` receiver (connected in PortalConfig.ready): one look at sign-in whether a
    self-service user enrolled, so their pages pay no query per request for it."""
    if request is not None and hasattr(request, "session") and not user.is_staff:
        request.session[OPTED_IN_SESSION_KEY] = user_has_primary_device(user)


EXEMPT_URL_NAMES = (
    "login",
    "logout",
    "admin:logout",
    "mfa:verify",
    "mfa:enrol",
    "mfa:recovery_codes",
    "otp_webauthn:credential-authentication-begin",
    "otp_webauthn:credential-authentication-complete",
    "otp_webauthn:credential-registration-begin",
    "otp_webauthn:credential-registration-complete",
    "otp_webauthn:js-i18n-catalog",
)


def _exempt_paths() -> frozenset[str]:
    # A URL configuration without some of these (a test's own) simply has fewer ways through.
    paths = set()
    for name in EXEMPT_URL_NAMES:
        with contextlib.suppress(NoReverseMatch):
            paths.add(reverse(name))
    return frozenset(paths)


class SecondFactorRequiredMiddleware:
    """After OTPMiddleware: a session that must verify and has not is sent to verify (or to enrol).

    Every page but sign-in, sign-out and the second-factor pages themselves: the admin, the self-service
    pages and the API with a session cookie (answered 403 in JSON there, a script cannot follow a redirect
    to a form). API requests with a personal token carry no session and are not affected: a token is
    made on /api/tokens/, which a staff session reaches only verified.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self._exempt = {}  # per URL configuration (ROOT_URLCONF, or a request's own urlconf)

    def __call__(self, request):
        urlconf = getattr(request, "urlconf", None) or settings.ROOT_URLCONF
        if urlconf not in self._exempt:
            self._exempt[urlconf] = _exempt_paths()
        path = request.path_info
        if (
            path not in self._exempt[urlconf]
            and not path.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/static/")
            and second_factor_required(request)
            and not request.user.is_verified()
        ):
            if path.startswith(API_PREFIX):
                return JsonResponse(
                    {"detail": "Confirm your second factor on the sign-in page first, or use an API token."},
                    status=403,
                )
            target = "mfa:verify" if user_has_primary_device(request.user) else "mfa:enrol"
            try:
                page = reverse(target)
            except NoReverseMatch:  # no second-factor pages here: closed, not open
                return HttpResponseForbidden("Confirm your second factor first.", content_type="text/plain")
            return redirect(f"{page}?{urlencode({'next': request.get_full_path()})}")
        return self.get_response(request)


# --- Recovery codes --------------------------------------------------------------------------------


def recovery_code_normalise(code: str) -> str:
    """The code as stored before hashing: letters and digits only, lower case ("ABCD-efgh" → "abcdefgh")."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def recovery_code_digest(code: str) -> str:
    """SHA-256 of the normalised code (80 random bits: no salt or slow hash is needed against guessing)."""
    return hashlib.sha256(recovery_code_normalise(code).encode("utf-8", "surrogatepass")).hexdigest()


def _recovery_code_new() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:RECOVERY_CODE_LENGTH]
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


@transaction.atomic
def recovery_codes_issue(*, user, acting_user, codes: list[str] | None = None) -> list[str]:
    """Replace the user's recovery codes with new ones and return them (the only time they are readable).

    Earlier codes stop working. `codes` is for the demo seed only (known codes); they are hashed like
    the random ones.
    """
    codes = codes or [_recovery_code_new() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCodeDevice.objects.filter(user=user).delete()
    device = RecoveryCodeDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    RecoveryCode.objects.bulk_create([RecoveryCode(device=device, digest=recovery_code_digest(c)) for c in codes])
    audit_record(
        action=AuditEvent.Action.RECOVERY_CODES_ISSUED,
        target=user,
        acting_user=acting_user,
        detail={"codes": len(codes)},
    )
    return codes


# --- TOTP enrolment ----------------------------------------------------------------------------------


def totp_enrolment_device(*, user) -> TOTPDevice:
    """The user's authenticator app waiting to be confirmed (made with a fresh secret when there is none)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


@transaction.atomic
def totp_device_add(*, user, key_hex: str, name: str, acting_user=None) -> TOTPDevice:
    """A confirmed authenticator app with a given secret (the demo seed's published demo-only key), audited."""
    device = TOTPDevice.objects.create(user=user, key=key_hex, name=name, confirmed=True)
    audit_record(
        action=AuditEvent.Action.SECOND_FACTOR_ENROLLED,
        target=user,
        acting_user=acting_user,
        detail={"device": device.persistent_id, "kind": "totp", "name": name},
    )
    return device


def totp_code_now(device: TOTPDevice) -> str:
    """The code `device` accepts now: the current step's, or a later one's when that was used (no replay).

    For the demo's `demo_code` and the tests; a real person's code comes from their phone.
    """
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if device.last_t >= totp.t():
        totp.time = totp.time + device.step * (device.last_t - totp.t() + 1)
    return f"{totp.token():0{device.digits}d}"


def totp_secret_text(device: TOTPDevice) -> str:
    """The secret as an authenticator app asks for it when typed: base32, in groups of four."""
    text = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def totp_qr_svg(device: TOTPDevice) -> SafeString:
    """The otpauth:// address as an inline SVG QR code (drawn here: no image service, nothing for the CSP)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg") :]  # drop the XML declaration, not allowed inside HTML
    return mark_safe(svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" ', 1))  # noqa: S308


def totp_enrolment_confirm(*, request: HttpRequest, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm the authenticator app with a code from it; the session is then verified by it.

    Returns the new recovery codes when the user had none (shown once), `[]` when they keep theirs.
    A wrong code raises ValidationError (and is audited, and throttled like any wrong code); nothing is
    confirmed.
    """
    user = request.user
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device.pk, user=user, confirmed=False).first()
        if device is None:  # the same form sent twice (a second tab, a double click): the first one set it up
            raise ValidationError("This authenticator app is set up already; open your second-factor page to see it.")
        allowed, _ = device.verify_is_allowed()
        ok = allowed and device.verify_token(_digits(token))
        if ok:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            audit_record(
                action=AuditEvent.Action.SECOND_FACTOR_ENROLLED,
                target=user,
                acting_user=user,
                detail={"device": device.persistent_id, "kind": "totp", "name": device.name},
            )
            codes = [] if RecoveryCodeDevice.objects.filter(user=user).exists() else None
            if codes is None:
                codes = recovery_codes_issue(user=user, acting_user=user)
    if not ok:
        audit_record(
            action=AuditEvent.Action.SECOND_FACTOR_FAILED,
            target=user,
            acting_user=user,
            detail={
                "device": device.persistent_id,
                "during": "enrolment",
                "throttled": not allowed,
                "address": client_address(request),
            },
        )
        raise ValidationError({"token": WRONG_CODE})
    otp_login(request, device)
    _note_enrolled(request)
    return codes


def _note_enrolled(request: HttpRequest) -> None:
    if not request.user.is_staff:
        request.session[OPTED_IN_SESSION_KEY] = True


def _digits(token: str) -> str:
    return "".join(ch for ch in str(token) if not ch.isspace())


# --- Verification ------------------------------------------------------------------------------------


def second_factor_verify(*, request: HttpRequest, token: str) -> None:
    """Verify the signed-in user's session with a code from their authenticator app or a recovery code.

    Raises ValidationError with one plain message for any wrong code (which device it missed is in the
    audit event, not on the page). Wrong codes are throttled twice: django-otp doubles each device's wait
    after every failure, and each one counts as a failed sign-in for the username (`portal.signin`), so
    repeated guessing locks the account like repeated wrong passwords.
    """
    user = request.user
    address = client_address(request)
    refusal = signin_refusal(username=user.get_username(), address=address)
    if refusal:
        raise ValidationError(refusal)
    token = _digits(token)
    if not token:
        raise ValidationError({"token": "Enter the code."})
    is_recovery = not token.isdigit()
    kinds = (RecoveryCodeDevice,) if is_recovery else (TOTPDevice,)
    waits = []
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if not isinstance(device, kinds):
                continue
            allowed, info = device.verify_is_allowed()
            if not allowed:
                waits.append(info or {})
                continue
            if device.verify_token(token):
                _verified(request, device, recovery=is_recovery)
                return
    audit_record(
        action=AuditEvent.Action.SECOND_FACTOR_FAILED,
        target=user,
        acting_user=user,
        detail={"kind": "recovery_code" if is_recovery else "totp", "throttled": bool(waits), "address": address},
    )
    signin_failure_record(username=user.get_username(), address=address)
    if waits:
        until = min((w.get("locked_until") for w in waits if w.get("locked_until")), default=None)
        seconds = max(1, int((until - timezone.now()).total_seconds()) + 1) if until else 1
        raise ValidationError(THROTTLED.format(seconds=seconds))
    raise ValidationError({"token": WRONG_CODE})


def _verified(request: HttpRequest, device, *, recovery: bool) -> None:
    user = request.user
    otp_login(request, device)
    detail = {"device": device.persistent_id, "kind": device_kind(device), "address": client_address(request)}
    if recovery:
        detail["codes_left"] = device.codes.count()
        audit_record(action=AuditEvent.Action.RECOVERY_CODE_USED, target=user, acting_user=user, detail=detail)
    else:
        audit_record(action=AuditEvent.Action.SECOND_FACTOR_VERIFIED, target=user, acting_user=user, detail=detail)


def device_kind(device) -> str:
    return {TOTPDevice: "totp", WebAuthnCredential: "passkey", RecoveryCodeDevice: "recovery_codes"}[type(device)]


# --- Devices: list and remove ------------------------------------------------------------------------


def user_devices(user) -> list:
    """The user's confirmed devices, authenticator apps and passkeys first, then the recovery code set."""
    return [device for model in DEVICE_MODELS for device in model.objects.filter(user=user, confirmed=True)]


def device_for_user(*, user, kind: str, pk: int):
    """The user's own device of this kind, or None (someone else's is None too: the page answers 404)."""
    model = {"totp": TOTPDevice, "passkey": WebAuthnCredential, "recovery_codes": RecoveryCodeDevice}.get(kind)
    if model is None:
        return None
    return model.objects.filter(user=user, pk=pk).first()


@transaction.atomic
def second_factor_device_remove(*, device, acting_user) -> None:
    """Remove a device (its owner, or IT in the admin); a session it verified is no longer verified.

    When the last authenticator app or passkey goes, the recovery codes go with it (they are a way back
    to a device, not a factor on their own): a staff user is asked to enrol again at the next page, a
    self-service user has opted out.
    """
    user = device.user
    detail = {"device": device.persistent_id, "kind": device_kind(device), "name": device.name}
    device.delete()
    audit_record(action=AuditEvent.Action.SECOND_FACTOR_REMOVED, target=user, acting_user=acting_user, detail=detail)
    if not isinstance(device, RecoveryCodeDevice) and not user_has_primary_device(user):
        for codes in RecoveryCodeDevice.objects.filter(user=user):
            second_factor_device_remove(device=codes, acting_user=acting_user)


# --- Passkeys (django-otp-webauthn) ------------------------------------------------------------------


def webauthn_rp_id(request: HttpRequest) -> str:
    """The relying party: the host name the person opened (already checked against ALLOWED_HOSTS)."""
    return request.get_host().rsplit(":", 1)[0] if not request.get_host().startswith("[") else request.get_host()


class PortalWebAuthnHelper(WebAuthnHelper):
    """The expected origin is the page's own origin (scheme, host and port), as the browser will report it."""

    def get_allowed_origins(self) -> list[str]:
        return [f"{self.request.scheme}://{self.request.get_host()}"]


def passkey_registered(*, request: HttpRequest, device: WebAuthnCredential) -> None:
    """Audit a new passkey; a self-service user who registers one has opted in."""
    audit_record(
        action=AuditEvent.Action.SECOND_FACTOR_ENROLLED,
        target=request.user,
        acting_user=request.user,
        detail={"device": device.persistent_id, "kind": "passkey", "name": device.name},
    )
    _note_enrolled(request)


def passkey_verified(*, request: HttpRequest, device: WebAuthnCredential) -> None:
    _verified(request, device, recovery=False)


def passkey_failed(*, request: HttpRequest, reason: str) -> None:
    if request.user.is_authenticated:
        audit_record(
            action=AuditEvent.Action.SECOND_FACTOR_FAILED,
            target=request.user,
            acting_user=request.user,
            detail={"kind": "passkey", "reason": reason[:200], "address": client_address(request)},
        )


def session_device_id(request: HttpRequest) -> str | None:
    return request.session.get(DEVICE_ID_SESSION_KEY)
