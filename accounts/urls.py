"""Self-service URLs for access (namespace `access`)."""

from django.urls import path

from accounts import views

app_name = "access"

urlpatterns = [
    path("access/", views.my_access, name="my_access"),
    path("access/request/", views.request_access, name="request"),
    path("access/requests/", views.my_requests, name="my_requests"),
    path("access/requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("access/requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("approvals/", views.approvals_inbox, name="approvals"),
    path("approvals/<int:pk>/", views.step_decide, name="step_decide"),
    path("approvals/delegation/", views.delegations, name="delegations"),
    path("approvals/delegation/<int:pk>/cancel/", views.delegation_cancel, name="delegation_cancel"),
    path("owner/", views.owned_applications, name="owned_applications"),
    path("owner/<int:pk>/", views.owned_application, name="owned_application"),
    path("reviews/", views.reviews, name="reviews"),
    path("reviews/bulk/", views.reviews_bulk, name="reviews_bulk"),
    path("reviews/items/<int:pk>/", views.review_item, name="review_item"),
]
