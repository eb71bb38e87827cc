"""Self-service pages for access: my access, requesting it, my requests, the approvals inbox,
delegation while away, the owner's view of who holds their applications, and access reviews.

Every view starts from the signed-in user and reads through `accounts.access`; writes go
through the services (`access_requests`, `approval_steps`, `delegations`). A refusal is shown on
the page and changes nothing.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import access
from accounts.forms import AccessRequestForm, DecisionForm, DelegationForm, ReviewBulkForm, ReviewDecisionForm
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequestStatus,
    ApprovalStep,
    ApprovalStepStatus,
)
from accounts.selectors import employee_for_user, entitlements_for_employee
from accounts.services import access_requests, approval_steps
from accounts.services import delegations as delegation_services
from accounts.services import reviews as review_services
from accounts.services.sod import sod_conflicts_for_grants, sod_conflicts_for_items
from portal.forms import add_service_errors, parse_id
from portal.views import no_record_page

# A control owner's step names its rule's two sides: read with the step, never one query per step.
SOD_RULE_RELATED = (
    "sod_rule__first_application",
    "sod_rule__second_application",
    "sod_rule__first_role",
    "sod_rule__second_role",
)


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
        request,
        "accounts/request_access.html",
        {
            "form": form,
            "applications": applications,
            "employee": employee,
            "sod_notes": _sod_notes(employee, applications),
        },
    )


def _sod_notes(employee, applications) -> list[dict]:
    """What the requester's current access rules out or makes need an extra approval, per application and
    level they could ask for (exceptions in force leave it out). One conflict computation for the page."""
    names = {app.pk: app.name for app in applications}
    pairs = [(app.pk, level) for app in applications for level in app.access_levels]
    notes = []
    for (app_id, level), conflicts in sod_conflicts_for_grants(employee=employee, pairs=pairs).items():
        for conflict in conflicts:
            if not conflict.excepted:
                notes.append({"application": names[app_id], "level": level, "conflict": conflict})
    return notes


def _steps_prefetch():
    return Prefetch(
        "steps", queryset=ApprovalStep.objects.select_related("approver", *SOD_RULE_RELATED).order_by("order")
    )


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
    steps = list(item.steps.select_related("approver", "decided_by", *SOD_RULE_RELATED).order_by("order"))
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
    chain = list(step.request.steps.select_related("approver", "decided_by", *SOD_RULE_RELATED).order_by("order"))
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


# --- Access reviews ------------------------------------------------------------------------------

REVIEWS_PER_PAGE = 50


def _review_filters(params, base):
    """The reviewer's items narrowed by the page's filters (campaign, application, suggestion, department,
    name); junk values are ignored. Returns (queryset, the filters as read)."""
    chosen = {
        "campaign": parse_id(params.get("campaign")),
        "application": parse_id(params.get("application")),
        "suggestion": params.get("suggestion") if params.get("suggestion") in ("keep", "revoke", "none") else "",
        # A NUL never reaches the database (PostgreSQL refuses it): the bulk form's filters come in a POST body.
        "department": (params.get("department") or "").replace("\x00", "").strip()[:100],
        "q": (params.get("q") or "").replace("\x00", "").strip()[:100],
    }
    items = base
    if chosen["campaign"] is not None:
        items = items.filter(campaign_id=chosen["campaign"])
    if chosen["application"] is not None:
        items = items.filter(application_id=chosen["application"])
    if chosen["suggestion"]:
        items = items.filter(suggestion="" if chosen["suggestion"] == "none" else chosen["suggestion"])
    if chosen["department"]:
        items = items.filter(department_name=chosen["department"])
    if chosen["q"]:
        items = items.filter(employee_name__icontains=chosen["q"])
    return items, chosen


@login_required
def reviews(request):
    """The access reviews waiting on the signed-in person (their own and delegated to them), a page at a
    time, with filters and a bulk decision. The same number of queries whatever the number of items."""
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Access reviews")
    base = review_services.review_items_for_reviewer(employee)
    items, chosen = _review_filters(request.GET, base)
    page = Paginator(
        items.select_related("campaign").order_by("campaign__due_on", "employee_name", "application_name", "pk"),
        REVIEWS_PER_PAGE,
    ).get_page(request.GET.get("page"))
    options = list(
        base.order_by()
        .values_list("campaign_id", "campaign__name", "campaign__due_on", "application_id", "application_name")
        .distinct()[:2000]
    )
    campaigns = sorted({(c, name, due) for c, name, due, _a, _n in options}, key=lambda x: (x[2], x[1]))
    applications = sorted({(a, n) for _c, _name, _due, a, n in options}, key=lambda x: x[1].lower())
    query = request.GET.copy()
    query.pop("page", None)
    page_items = list(page.object_list)
    conflicts = sod_conflicts_for_items(page_items)
    for item in page_items:
        item.sod_conflicts = conflicts.get(item.pk, [])
    return render(
        request,
        "accounts/reviews.html",
        {
            "page": page,
            "items": page_items,
            "chosen": chosen,
            "campaigns": campaigns,
            "applications": applications,
            "form": ReviewBulkForm(),
            "filters": query.urlencode(),
            "employee": employee,
            "received": list(access.delegations_received(request.user)),
        },
    )


@login_required
@require_POST
def reviews_bulk(request):
    """One decision on the ticked items, or on every item the filters show (up to `BULK_LIMIT`)."""
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "Access reviews")
    form = ReviewBulkForm(request.POST)
    back = redirect(f"{reverse('access:reviews')}?{request.POST.get('filters', '')}")
    if not form.is_valid():
        for errors in form.errors.values():
            for message in errors:
                messages.error(request, message)
        return back
    base = review_services.review_items_for_reviewer(employee)
    if form.cleaned_data["scope"] == "filtered":
        filters = QueryDict(request.POST.get("filters", ""))
        items, _chosen = _review_filters(filters, base)
    else:
        ids = [pk for pk in (parse_id(value) for value in request.POST.getlist("items")) if pk is not None]
        if not ids:
            messages.error(request, "Tick the items to decide, or choose every item the filters show.")
            return back
        items = base.filter(pk__in=ids)
    chosen = list(items.order_by("pk")[: review_services.BULK_LIMIT + 1])
    more = len(chosen) > review_services.BULK_LIMIT
    try:
        result = review_services.review_items_decide_many(
            items=chosen[: review_services.BULK_LIMIT],
            decision=form.cleaned_data["decision"],
            comment=form.cleaned_data["comment"],
            acting_user=request.user,
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return back
    verb = "kept" if form.cleaned_data["decision"] == "keep" else "revoked"
    if result["done"]:
        messages.success(request, f"You {verb} {len(result['done'])} item{pluralize(len(result['done']))}.")
    for item, reason in result["failed"][:10]:
        messages.error(request, f"{item}: {reason}")
    if more:
        messages.info(request, f"Only {review_services.BULK_LIMIT} items are decided at once; decide the rest next.")
    return back


@login_required
def review_item(request, pk: int):
    """One item: what is frozen about it, the suggestion, and the decision with a comment."""
    item = access.review_item_for_reviewer(request.user, pk)
    levels = [level for level in item.application.access_levels if level != item.level]
    form = ReviewDecisionForm(request.POST or None, levels=levels)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            decided = review_services.review_item_decide(
                item=item,
                decision=data["decision"],
                comment=data["comment"],
                new_level=data["new_level"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if decided.is_open:
                messages.success(request, f"You kept {item}; the application owner reviews it next.")
            else:
                verb = {"keep": "kept", "revoke": "revoked", "change_level": "changed the level of"}[decided.decision]
                messages.success(request, f"You {verb} {item}.")
            return redirect("access:reviews")
    return render(
        request,
        "accounts/review_item.html",
        {
            "item": item,
            "form": form,
            "on_behalf": item.reviewer.user_id != request.user.pk,
            "sod_conflicts": sod_conflicts_for_items([item]).get(item.pk, []),
        },
    )
