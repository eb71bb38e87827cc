"""The second-factor pages: verify after the password, enrol, my devices, recovery codes; passkey endpoints.

Thin views over `portal.mfa`. The passkey endpoints are django-otp-webauthn's views with an audit event
on each outcome; they keep that package's URL names (namespace `otp_webauthn`), which its scripts use.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp_webauthn import exceptions as webauthn_exceptions
from django_otp_webauthn import views as webauthn_views
from django_otp_webauthn.models import WebAuthnCredential

from portal import mfa
from portal.forms import add_service_errors, parse_id
from portal.models import RecoveryCodeDevice


class CodeForm(forms.Form):
    token = forms.CharField(
        label="Code",
        max_length=40,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )


class EnrolForm(forms.Form):
    token = forms.CharField(
        label="Code from the app",
        max_length=12,
        help_text="After adding Portal to the app, type the 6-digit code it shows.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("admin:index") if request.user.is_staff else reverse("home")


@login_required
def verify(request):
    """Second step of sign-in: a code (authenticator app or recovery code) or a passkey."""
    if request.user.is_verified():
        return redirect(_next(request))
    if not mfa.user_has_primary_device(request.user):
        return redirect(f"{reverse('mfa:enrol')}?{request.GET.urlencode()}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            mfa.second_factor_verify(request=request, token=form.cleaned_data["token"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            return redirect(_next(request))
    has_passkey = WebAuthnCredential.objects.filter(user=request.user, confirmed=True).exists()
    return render(request, "portal/mfa_verify.html", {"form": form, "next": _next(request), "has_passkey": has_passkey})


@login_required
def enrol(request):
    """Add an authenticator app (QR code and secret, confirmed with a code) or a passkey.

    Without a device (first sign-in) anyone signed in may enrol; with one, only a verified session may
    add another, so a stolen password cannot add the thief's phone.
    """
    if mfa.user_has_primary_device(request.user) and not request.user.is_verified():
        return redirect(f"{reverse('mfa:verify')}?{request.GET.urlencode()}")
    device = mfa.totp_enrolment_device(user=request.user)
    form = EnrolForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = mfa.totp_enrolment_confirm(request=request, device=device, token=form.cleaned_data["token"])
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, "Your authenticator app is set up: Portal asks for a code from it at each sign-in."
            )
            if codes:
                return render(request, "portal/mfa_recovery_codes.html", {"codes": codes, "next": _next(request)})
            return redirect(_next(request))
    context = {
        "form": form,
        "qr_svg": mfa.totp_qr_svg(device),
        "secret": mfa.totp_secret_text(device),
        "next": _next(request),
        "first": not mfa.user_has_primary_device(request.user),
    }
    return render(request, "portal/mfa_enrol.html", context)


@login_required
def devices(request):
    """My second-factor devices, each removable; links to add one and to issue new recovery codes."""
    rows = [(mfa.device_kind(d), d) for d in mfa.user_devices(request.user)]
    recovery = next((d for kind, d in rows if kind == "recovery_codes"), None)
    context = {
        "rows": [(kind, d) for kind, d in rows if kind != "recovery_codes"],
        "recovery": recovery,
        "codes_left": recovery.codes.count() if recovery else 0,
        "required": request.user.is_staff,
    }
    return render(request, "portal/mfa_devices.html", context)


@login_required
@require_POST
def recovery_codes(request):
    """Issue new recovery codes (the old ones stop working); shown on this answer only."""
    if not mfa.user_has_primary_device(request.user):
        messages.error(request, "Set up an authenticator app or a passkey first: recovery codes are a way back to it.")
        return redirect("mfa:devices")
    if not request.user.is_verified():
        return redirect("mfa:verify")
    codes = mfa.recovery_codes_issue(user=request.user, acting_user=request.user)
    return render(request, "portal/mfa_recovery_codes.html", {"codes": codes, "next": reverse("mfa:devices")})


@login_required
@require_POST
def device_remove(request, kind, pk):
    device_id = parse_id(str(pk))
    device = mfa.device_for_user(user=request.user, kind=kind, pk=device_id) if device_id else None
    if device is None:
        raise Http404("No such device.")
    name = "your recovery codes" if isinstance(device, RecoveryCodeDevice) else f"“{device.name}”"
    mfa.second_factor_device_remove(device=device, acting_user=request.user)
    if not request.user.is_staff and not mfa.user_has_primary_device(request.user):
        request.session[mfa.OPTED_IN_SESSION_KEY] = False  # a self-service user without a device has opted out
    messages.success(request, f"Removed {name}; it no longer signs you in.")
    return redirect("mfa:devices")


# --- Passkeys: django-otp-webauthn's endpoints, audited ---------------------------------------------


class BeginPasskeyRegistration(webauthn_views.BeginCredentialRegistrationView):
    pass


class CompletePasskeyRegistration(webauthn_views.CompleteCredentialRegistrationView):
    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        device = WebAuthnCredential.objects.get(pk=_json_id(response), user=self.request.user)
        mfa.passkey_registered(request=self.request, device=device)
        return response


class BeginPasskeyAuthentication(webauthn_views.BeginCredentialAuthenticationView):
    pass


class CompletePasskeyAuthentication(webauthn_views.CompleteCredentialAuthenticationView):
    """Audits each outcome; the session is verified by `portal.mfa` like a code (with its audit event)."""

    def complete_auth(self, device):
        mfa.passkey_verified(request=self.request, device=device)

    def handle_exception(self, exc):
        if isinstance(exc, webauthn_exceptions.OTPWebAuthnApiError):
            mfa.passkey_failed(request=self.request, reason=getattr(exc, "code", "") or type(exc).__name__)
        return super().handle_exception(exc)


def _json_id(response) -> int:
    import json

    return int(json.loads(response.content)["id"])
