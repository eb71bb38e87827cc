"""Self-service URLs for hardware (namespace `assets`)."""

from django.urls import path

from assets import views

app_name = "assets"

urlpatterns = [
    path("hardware/", views.my_hardware, name="my_hardware"),
    path("hardware/checkouts/<int:pk>/accept-terms/", views.accept_terms, name="accept_terms"),
]
