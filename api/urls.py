"""/api/v1/ (the REST API, its OpenAPI schema and docs) and /api/tokens/ (the self-service token page)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api import pages, views

app_name = "api"

router = SimpleRouter()
router.register("employees", views.EmployeeViewSet, basename="employee")
router.register("departments", views.DepartmentViewSet, basename="department")
router.register("locations", views.LocationViewSet, basename="location")
router.register("roles", views.RoleViewSet, basename="role")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("entitlements", views.EntitlementViewSet, basename="entitlement")
router.register("access-requests", views.AccessRequestViewSet, basename="accessrequest")
router.register("hardware", views.HardwareViewSet, basename="hardware")
router.register("checkouts", views.CheckoutViewSet, basename="checkout")
router.register("licenses", views.LicenseViewSet, basename="license")
router.register("checklist-runs", views.ChecklistRunViewSet, basename="checklistrun")
router.register("tasks", views.TaskViewSet, basename="task")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/me/", views.MeView.as_view(), name="me"),
    path("v1/usage/", views.UsageView.as_view(), name="usage"),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", views.DocsView.as_view(url_name="api:schema"), name="docs"),
    path("tokens/", pages.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", pages.token_revoke, name="token_revoke"),
    re_path(r"^v1/", views.NotFoundView.as_view()),  # last: an unknown address under v1 answers JSON 404
]
