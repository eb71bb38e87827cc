"""Self-service pages of the lifecycle: my tasks, my hardware returns (signed in, or through the signed
link a leaver gets by email), and a manager's team with move and leave requests for IT.

Every view reads through `offboarding.access` and writes through a service; a refusal is shown on
the page and changes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import Location
from accounts.selectors import employee_for_user
from offboarding import access, engine
from offboarding.flows import change_requests, returns
from offboarding.forms import CompleteTaskForm, LeaveRequestForm, MoveRequestForm, ReturnShipForm
from offboarding.models import ChangeRequestKind, ReturnStatus
from portal.forms import add_service_errors
from portal.views import no_record_page


@login_required
def my_tasks(request):
    """Onboarding (and other) tasks assigned to me, with their knowledge-base links."""
    if employee_for_user(request.user) is None:
        return no_record_page(request, "My tasks")
    tasks = list(access.tasks_for_user(request.user))
    return render(request, "offboarding/my_tasks.html", {"tasks": tasks, "now": timezone.now()})


@login_required
@require_POST
def task_done(request, pk: int):
    task = access.task_for_assignee(request.user, pk)
    form = CompleteTaskForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"“{task.title}” is not marked done: {' '.join(form.errors['note'])}")
        return redirect("offboarding:my_tasks")
    try:
        engine.task_complete(task=task, acting_user=request.user, note=form.cleaned_data["note"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Done: “{task.title}”.")
    return redirect("offboarding:my_tasks")


# --- Hardware returns -------------------------------------------------------------------------


def _returns_page(request, employee, *, token: str | None = None, failed=None, status: int | None = None):
    """The return checklist of `employee`: one item per asset, a form for each open one, progress."""
    items = list(access.returns_for_employee(employee))
    forms = {}
    for item in items:
        if item.status == ReturnStatus.OPEN:
            forms[item.pk] = (
                failed
                if failed is not None and failed.prefix == f"r{item.pk}"
                else ReturnShipForm(prefix=f"r{item.pk}")
            )
    if forms:
        # One query for the offices, shared by every item's form (each would otherwise load them again).
        offices = [("", "Choose"), *((loc.pk, str(loc)) for loc in Location.objects.order_by("name"))]
        for form in forms.values():
            form.fields["drop_off_location"].choices = offices
    rows = [{"item": item, "form": forms.get(item.pk)} for item in items]
    on_the_way = sum(1 for i in items if i.status in (ReturnStatus.SHIPPED, ReturnStatus.RECEIVED))
    received = sum(1 for i in items if i.status == ReturnStatus.RECEIVED)
    action = (
        (lambda pk: reverse("offboarding:return_link_ship", args=[token, pk]))
        if token
        else (lambda pk: reverse("offboarding:return_ship", args=[pk]))
    )
    for row in rows:
        row["action"] = action(row["item"].pk)
    return render(
        request,
        "offboarding/my_returns.html",
        {
            "employee": employee,
            "rows": rows,
            "total": len(items),
            "on_the_way": on_the_way,
            "received": received,
            "via_link": token is not None,
        },
        status=status or (200 if failed is None else 400),
    )


def _ship(request, employee, pk: int, *, token: str | None = None):
    """Confirm one item on its way; a return no longer open (received by IT, or confirmed from another tab)
    answers 409 with the reason on the checklist page, and nothing changes."""
    item = access.return_for_holder(employee, pk)
    if item.status != ReturnStatus.OPEN:
        return _closed_return(request, employee, item, token=token)
    form = ReturnShipForm(request.POST, prefix=f"r{item.pk}")
    if form.is_valid():
        data = form.cleaned_data
        try:
            returns.hardware_return_ship(
                item=item,
                method=data["method"],
                drop_off_location=data["drop_off_location"],
                drop_off_date=data["drop_off_date"],
                carrier=data["carrier"],
                tracking_number=data["tracking_number"],
                # Through a return link the actor is the link's owner, whoever else is signed in here.
                acting_user=None if token else request.user,
                via_link=token is not None,
            )
        except ValidationError as exc:
            item.refresh_from_db(fields=["status"])
            if item.status != ReturnStatus.OPEN:  # closed between the read above and the service's lock
                return _closed_return(request, employee, item, token=token)
            add_service_errors(form, exc)
        else:
            how = "dropped off" if data["method"] == "drop_off" else "on its way by courier"
            messages.success(
                request, f"Thank you: {item.asset.asset_tag} is marked {how}. IT confirms when it arrives."
            )
            if token:
                return redirect("offboarding:return_link", token)
            return redirect("offboarding:my_returns")
    messages.error(request, f"{item.asset.asset_tag} is not confirmed yet: see the errors below.")
    return _returns_page(request, employee, token=token, failed=form)


def _closed_return(request, employee, item, *, token: str | None):
    messages.error(request, returns.hardware_return_closed_reason(item))
    return _returns_page(request, employee, token=token, status=409)


@login_required
def my_returns(request):
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Hardware returns")
    return _returns_page(request, employee)


@login_required
@require_POST
def return_ship(request, pk: int):
    employee = employee_for_user(request.user)
    return _ship(request, employee, pk)


def _employee_for_link(request, token: str):
    employee = returns.employee_for_return_token(token)
    if employee is None:
        return None, render(request, "offboarding/return_link_invalid.html", status=404)
    return employee, None


@never_cache  # a leaver's own items, shown by token to a browser that is not signed in
def return_link(request, token: str):
    """The return checklist through the signed link in a leaver's reminder emails (no sign-in needed)."""
    employee, invalid = _employee_for_link(request, token)
    return invalid or _returns_page(request, employee, token=token)


@never_cache
@require_POST
def return_link_ship(request, token: str, pk: int):
    employee, invalid = _employee_for_link(request, token)
    return invalid or _ship(request, employee, pk, token=token)


# --- A manager's team --------------------------------------------------------------------------


@login_required
def team(request):
    """The signed-in manager's direct reports, with counts of access, hardware and open checklists."""
    if employee_for_user(request.user) is None:
        return no_record_page(request, "My team")
    reports = list(access.reports_for_manager(request.user))
    return render(request, "offboarding/team.html", {"reports": reports})


@login_required
def team_member(request, pk: int):
    report = access.report_for_manager(request.user, pk)
    detail = access.report_detail(report, manager=employee_for_user(request.user))
    return render(request, "offboarding/team_member.html", {"report": report, **detail})


@login_required
def change_request(request, pk: int, kind: str):
    """Ask IT to move (new role, department or manager) or off-board one of my reports."""
    report = access.report_for_manager(request.user, pk)
    if kind not in ChangeRequestKind.values:
        raise Http404("No such kind of request.")
    form_class = MoveRequestForm if kind == ChangeRequestKind.MOVE else LeaveRequestForm
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = change_requests.change_request_create(
                manager=employee_for_user(request.user),
                employee=report,
                kind=kind,
                effective_date=data["effective_date"],
                reason=data["reason"],
                new_role=data.get("new_role"),
                new_department=data.get("new_department"),
                new_manager=data.get("new_manager"),
                acting_user=request.user,
            )
        except PermissionDenied:
            raise
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Your {created.get_kind_display().split(' (')[0].lower()} request for {report.full_name} "
                "is with IT; you get an email when they confirm it.",
            )
            return redirect("offboarding:team_member", report.pk)
    return render(request, "offboarding/change_request.html", {"report": report, "form": form, "kind": kind})
