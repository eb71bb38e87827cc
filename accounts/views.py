"""Self-service pages for access: my access, requesting it, my requests, the approvals inbox,
delegation while away, and the owner's view of who holds their applications.

Every view starts from the signed-in user and reads through `accounts.access`; writes go
through the services (`access_requests`, `approval_steps`, `delegations`). A refusal is shown on
the page and changes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import access
from accounts.forms import AccessRequestForm, DecisionForm, DelegationForm
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequestStatus,
    ApprovalStep,
    ApprovalStepStatus,
)
from accounts.selectors import employee_for_user, entitlements_for_employee
from accounts.services import access_requests, approval_steps
from accounts.services import delegations as delegation_services
from portal.forms import add_service_errors, parse_id
from portal.views import no_record_page


@login_required
def my_access(request):
    """Each live entitlement: application, level, since when, until when, status."""
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "My access")
    return render(
        request,
        "accounts/my_access.html",
        {"employee": employee, "entitlements": list(entitlements_for_employee(employee))},
    )


@login_required
def request_access(request):
    """Ask for access to a requestable application; the policy decides who approves."""
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Request access")
    applications = list(access.requestable_applications())
    initial = {}
    application_id = parse_id(request.GET.get("application")) if request.method == "GET" else None
    if application_id is not None:
        initial["application"] = application_id
    form = AccessRequestForm(request.POST or None, applications=applications, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = access_requests.access_request_create(
                employee=employee,
                application=data["application"],
                level=data["level"],
                justification=data["justification"],
                end_date=data["end_date"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if created.status == AccessRequestStatus.APPROVED:
                messages.success(
                    request, f"{created.application.name} needs no approval: your access is being set up now."
                )
            else:
                first = created.steps.filter(status=ApprovalStepStatus.PENDING).select_related("approver").first()
                messages.success(
                    request,
                    f"Request #{created.pk} for {created.application.name} is sent"
                    + (f"; it now waits for {first.approver.full_name}." if first else "."),
                )
            return redirect("access:request_detail", created.pk)
    return render(
        request, "accounts/request_access.html", {"form": form, "applications": applications, "employee": employee}
    )


def _steps_prefetch():
    return Prefetch("steps", queryset=ApprovalStep.objects.select_related("approver").order_by("order"))


@login_required
def my_requests(request):
    """The signed-in person's requests with the state of each approval step."""
    if employee_for_user(request.user) is None:
        return no_record_page(request, "My requests")
    requests = list(access.requests_for_requester(request.user).prefetch_related(_steps_prefetch())[:200])
    return render(request, "accounts/my_requests.html", {"requests": requests})


@login_required
def request_detail(request, pk: int):
    item = access.request_for_requester(request.user, pk)
    steps = list(item.steps.select_related("approver", "decided_by").order_by("order"))
    return render(request, "accounts/request_detail.html", {"item": item, "steps": steps})


@login_required
@require_POST
def request_cancel(request, pk: int):
    item = access.request_for_requester(request.user, pk)
    try:
        access_requests.access_request_cancel(request=item, acting_user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Request #{item.pk} for {item.application.name} is cancelled.")
    return redirect("access:request_detail", item.pk)


APPROVALS_PER_PAGE = 50  # steps per page of the approvals inbox, oldest first


@login_required
def approvals_inbox(request):
    """Steps waiting on the signed-in person (their own and delegated to them), oldest first, a page at a
    time, and what they decided lately.

    `?page=` past the last page shows the last, and one that is not a page number the first (never an
    error). The same number of queries whatever the number of steps waiting: one count, one page.
    """
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Approvals")
    page = Paginator(access.steps_for_decider(request.user, employee=employee), APPROVALS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    decided = list(
        ApprovalStep.objects.filter(decided_by=request.user)
        .select_related("request__employee", "request__application")
        .order_by("-decided_at")[:20]
    )
    return render(
        request,
        "accounts/approvals.html",
        {
            "page": page,
            "waiting": list(page.object_list),
            "decided": decided,
            "employee": employee,
            "received": list(access.delegations_received(request.user)),
        },
    )


@login_required
def step_decide(request, pk: int):
    """One step: the request, its justification and chain; approve or reject with a comment."""
    step = access.step_for_decider(request.user, pk)
    form = DecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        approve = form.cleaned_data["decision"] == "approve"
        try:
            approval_steps.approval_step_decide(
                step=step, acting_user=request.user, approve=approve, comment=form.cleaned_data["comment"]
            )
        except PermissionDenied:
            raise
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            verb = "approved" if approve else "rejected"
            messages.success(
                request,
                f"You {verb} {step.request.employee.full_name}'s request for {step.request.application.name}.",
            )
            return redirect("access:approvals")
    step = access.step_for_decider(request.user, pk)  # as it is now (a failed POST may have raced a decision)
    chain = list(step.request.steps.select_related("approver", "decided_by").order_by("order"))
    return render(
        request,
        "accounts/step_decide.html",
        {
            "step": step,
            "item": step.request,
            "chain": chain,
            "form": form,
            "can_decide": access.can_decide_step(request.user, step),
            "on_behalf": step.approver.user_id != request.user.pk,
        },
    )


@login_required
def delegations(request):
    """Delegate approvals to a colleague for a date range; see and cancel what you delegated."""
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Delegate approvals")
    today = timezone.localdate()
    form = DelegationForm(request.POST or None, initial={"starts_on": today})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            delegation = delegation_services.delegation_create(
                delegator=employee,
                delegate=data["delegate"],
                starts_on=data["starts_on"],
                ends_on=data["ends_on"],
                reason=data["reason"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"{delegation.delegate.full_name} decides your approvals from "
                f"{delegation.starts_on:%d %b %Y} to {delegation.ends_on:%d %b %Y}.",
            )
            return redirect("access:delegations")
    given = list(access.delegations_for_delegator(request.user)[:50])
    return render(
        request,
        "accounts/delegations.html",
        {"form": form, "given": given, "today": today, "received": list(access.delegations_received(request.user))},
    )


@login_required
@require_POST
def delegation_cancel(request, pk: int):
    delegation = access.delegation_for_delegator(request.user, pk)
    delegation_services.delegation_cancel(delegation=delegation, acting_user=request.user)
    messages.success(request, f"Your delegation to {delegation.delegate.full_name} is cancelled.")
    return redirect("access:delegations")


@login_required
def owned_applications(request):
    """The applications the signed-in person owns, with how many people hold each."""
    if employee_for_user(request.user) is None:
        return no_record_page(request, "My applications")
    apps = list(
        access.applications_owned_by(request.user)
        .annotate(
            holders=Count("entitlements", filter=Q(entitlements__status__in=LIVE_ENTITLEMENT_STATUSES)),
        )
        .order_by("name")
    )
    return render(request, "accounts/owned_applications.html", {"applications": apps})


@login_required
def owned_application(request, pk: int):
    """Who holds one of the signed-in person's applications: level, since, last use and source."""
    application = access.application_for_owner(request.user, pk)
    page = Paginator(access.holders_of(application), 100).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/owned_application.html",
        {"application": application, "page": page, "holders": list(page.object_list), "now": timezone.now()},
    )
