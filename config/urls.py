"""Portal URL configuration: admin, self-service pages and their login (both login forms throttled)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from accounts.scim.views import scim_view
from config import views
from portal.mfa_urls import passkey_patterns
from portal.signin import AdminSignInForm, SignInForm

admin.site.site_header = "Portal administration"
admin.site.site_title = "Portal admin"
admin.site.index_title = "IT operations"
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=SignInForm),
        name="login",
    ),
    path("logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # The second factor: verify after the password, enrol, my devices (portal.mfa); passkey endpoints.
    path("account/second-factor/", include("portal.mfa_urls")),
    path("account/second-factor/passkeys/", include(passkey_patterns)),
    # SCIM 2.0 for identity providers (Okta, Entra ID): one view, scim2-server routes inside it.
    re_path(r"^scim/v2/?(?P<path>.*)$", scim_view, name="scim"),
    path("", include("accounts.urls")),
    path("", include("assets.urls")),
    path("", include("offboarding.urls")),
    path("api/", include("api.urls")),
]
