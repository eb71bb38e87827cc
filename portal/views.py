"""Self-service pages. Each view scopes what it shows to the signed-in user."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.shortcuts import render

from accounts.selectors import employee_for_user, entitlements_for_employee
from assets.selectors import hardware_for_employee


@login_required
def home(request):
    """The signed-in person's profile, their live access and the hardware they hold.

    A login without an employee record (an IT service account, say) gets an
    explanation instead. A constant number of queries, however much they hold.
    """
    employee = employee_for_user(request.user)
    context = {"employee": employee, "entitlements": [], "hardware": []}
    if employee is not None:
        context["entitlements"] = list(entitlements_for_employee(employee))
        context["hardware"] = list(hardware_for_employee(employee))
    return render(request, "portal/home.html", context)


class PortalLogoutView(LogoutView):
    """Django's logout (POST only), confirming on the sign-in page that it happened."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.success(request, "You have signed out.")
        return response
