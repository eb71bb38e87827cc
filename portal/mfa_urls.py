"""URLs of the second-factor pages (namespace `mfa`) and of the passkey endpoints (namespace `otp_webauthn`,
the names django-otp-webauthn's scripts reverse)."""

from django.urls import path
from django.views.i18n import JavaScriptCatalog

from portal import mfa_views

passkey_patterns = (
    [
        path("registration/begin/", mfa_views.BeginPasskeyRegistration.as_view(), name="credential-registration-begin"),
        path(
            "registration/complete/",
            mfa_views.CompletePasskeyRegistration.as_view(),
            name="credential-registration-complete",
        ),
        path(
            "authentication/begin/",
            mfa_views.BeginPasskeyAuthentication.as_view(),
            name="credential-authentication-begin",
        ),
        path(
            "authentication/complete/",
            mfa_views.CompletePasskeyAuthentication.as_view(),
            name="credential-authentication-complete",
        ),
        path("jsi18n/", JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]), name="js-i18n-catalog"),
    ],
    "otp_webauthn",
)

app_name = "mfa"
urlpatterns = [
    path("", mfa_views.devices, name="devices"),
    path("verify/", mfa_views.verify, name="verify"),
    path("enrol/", mfa_views.enrol, name="enrol"),
    path("recovery-codes/", mfa_views.recovery_codes, name="recovery_codes"),
    path("<str:kind>/<str:pk>/remove/", mfa_views.device_remove, name="device_remove"),
]
