"""Self-service pages. Each view scopes what it shows to the signed-in user."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.db.models import Value
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
    context = {"employee": employee, "entitlements": [], "hardware": [], "waiting": {}}
    if employee is not None:
        context["entitlements"] = list(entitlements_for_employee(employee))
        context["hardware"] = list(hardware_for_employee(employee))
        context["waiting"] = _waiting_for(request.user, employee)
    return render(request, "portal/home.html", context)


def _waiting_for(user, employee) -> dict[str, int]:
    """What needs the person now, counted in one query: approvals to decide, access to review, their tasks, hardware to
    return, their own requests still pending, and whether they have reports or own applications."""
    from django.db.models import Count, IntegerField, Subquery
    from django.db.models.functions import Coalesce

    from accounts.access import steps_for_decider
    from accounts.models import AccessRequest, AccessRequestStatus, Application, Employee
    from accounts.services.reviews import review_items_for_reviewer
    from offboarding.access import returns_for_employee
    from offboarding.models import ReturnStatus
    from offboarding.selectors import tasks_for_assignee

    def counted(queryset):
        return Coalesce(
            Subquery(
                queryset.order_by().annotate(_one=Value(1)).values("_one").annotate(n=Count("*")).values("n")[:1],
                output_field=IntegerField(),
            ),
            0,
        )

    row = (
        Employee.objects.filter(pk=employee.pk)
        .annotate(
            w_approvals=counted(steps_for_decider(user, employee=employee)),
            w_reviews=counted(review_items_for_reviewer(employee)),
            w_tasks=counted(tasks_for_assignee(employee=employee)),
            w_returns=counted(returns_for_employee(employee).filter(status=ReturnStatus.OPEN)),
            w_requests=counted(AccessRequest.objects.filter(employee=employee, status=AccessRequestStatus.PENDING)),
            w_reports=counted(Employee.objects.filter(manager=employee, anonymised_at__isnull=True)),
            w_owned=counted(Application.objects.filter(owner=employee)),
        )
        .values("w_approvals", "w_reviews", "w_tasks", "w_returns", "w_requests", "w_reports", "w_owned")
        .get()
    )
    return {key.removeprefix("w_"): value for key, value in row.items()}


class PortalLogoutView(LogoutView):
    """Django's logout (POST only), confirming on the sign-in page that it happened."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.success(request, "You have signed out.")
        return response
