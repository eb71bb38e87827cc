"""Who may see and do what with access requests, approval steps and delegations.

One helper per model decides, and views go through them; none fetches a row by id unchecked.
Rows a user may not see are reported as missing (`Http404`), so an id tried in a URL tells
nothing about other people's requests. Object permissions are django-guardian's
(`DECIDE_STEP_PERM`, granted per step to its approver and their delegates while
the step is pending); a permission alone is not enough: the person must still be the approver,
or a delegate whose delegation is in force today.
"""

import datetime

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.core import ObjectPermissionChecker

from accounts.models import (
    CANCEL_REQUEST,
    DECIDE_STEP,
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    AccessRequestStatus,
    Application,
    ApprovalDelegation,
    ApprovalStep,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Employee,
    Entitlement,
)
from accounts.selectors import employee_for_user


def _in_force(day: datetime.date) -> Q:
    """Delegations not cancelled whose date range holds `day` (both days included)."""
    return Q(cancelled_at__isnull=True, starts_on__lte=day, ends_on__gte=day)


def delegations_in_force(*, delegator: Employee, day: datetime.date | None = None) -> QuerySet[ApprovalDelegation]:
    return ApprovalDelegation.objects.filter(
        _in_force(day or timezone.localdate()), delegator=delegator
    ).select_related("delegate")


def _delegators_of(employee: Employee, day: datetime.date) -> QuerySet:
    return ApprovalDelegation.objects.filter(_in_force(day), delegate=employee).values("delegator_id")


def can_decide_step(user, step: ApprovalStep, *, day: datetime.date | None = None) -> bool:
    """True when `user` may decide `step` now: it is pending, they hold the guardian permission on it,
    and they are its approver or a delegate of the approver whose delegation is in force today."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if step.status != ApprovalStepStatus.PENDING:
        return False
    if DECIDE_STEP not in ObjectPermissionChecker(user).get_user_perms(step):
        return False
    employee = employee_for_user(user)
    if employee is None:
        return False
    if decides_twice(employee, user, step):
        return False
    if step.approver_id == employee.pk:
        return True
    if step.request.employee_id == employee.pk:
        return False  # a delegate never decides their own request
    day = day or timezone.localdate()
    return _delegators_of(employee, day).filter(delegator_id=step.approver_id).exists()


def decides_twice(employee: Employee, user, step: ApprovalStep) -> bool:
    """True when deciding `step` would let one person give two approvals of one request: they approve
    another of its steps, or already decided one (as a delegate, say). Separation of duties."""
    return (
        ApprovalStep.objects.filter(request_id=step.request_id)
        .exclude(pk=step.pk)
        .filter(
            Q(approver=employee, status__in=[ApprovalStepStatus.WAITING, ApprovalStepStatus.PENDING])
            | Q(decided_by=user)
        )
        .exists()
    )


def can_cancel_request(user, request: AccessRequest) -> bool:
    """True when `user` may cancel `request`: it is pending, it is their own, and they hold the guardian
    permission `CANCEL_REQUEST_PERM` on it (granted when they sent it, removed once it is decided)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if request.status != AccessRequestStatus.PENDING or request.employee.user_id != user.pk:
        return False
    return CANCEL_REQUEST in ObjectPermissionChecker(user).get_user_perms(request)


def steps_for_decider(user, *, day: datetime.date | None = None, employee=None) -> QuerySet[ApprovalStep]:
    """The pending steps `user` may decide now (their own and those delegated to them), oldest first.

    One query whatever their number, requester and application included. `employee` is the user's
    employee record when the caller has it already.
    """
    employee = employee if employee is not None else employee_for_user(user)
    if employee is None:
        return ApprovalStep.objects.none()
    day = day or timezone.localdate()
    permitted = ApprovalStepUserObjectPermission.objects.filter(user=user, permission__codename=DECIDE_STEP).values(
        "content_object_id"
    )
    return (
        ApprovalStep.objects.filter(status=ApprovalStepStatus.PENDING, pk__in=permitted)
        .filter(
            Q(approver=employee) | (Q(approver_id__in=_delegators_of(employee, day)) & ~Q(request__employee=employee))
        )
        .select_related("request__employee__department", "request__application", "approver")
        .order_by("activated_at", "pk")
    )


def step_for_decider(user, pk: int) -> ApprovalStep:
    """The step `pk` if `user` is (or was) the one to decide it: its approver once it is their turn, a
    delegate in force while it is pending, or the person who decided it. Anyone else gets `Http404`.
    Whether they may decide it *now* is `can_decide_step`'s answer (a decided step is shown, not decidable)."""
    employee = employee_for_user(user)
    if employee is None:
        raise Http404("No such approval step.")
    step = (
        ApprovalStep.objects.select_related("request__employee", "request__application", "approver", "decided_by")
        .filter(pk=pk)
        .first()
    )
    if step is None:
        raise Http404("No such approval step.")
    if step.decided_by_id == user.pk:
        return step
    if step.approver_id == employee.pk and step.status in (
        ApprovalStepStatus.PENDING,
        ApprovalStepStatus.APPROVED,
        ApprovalStepStatus.REJECTED,
    ):
        return step  # not before it is their turn, nor a step skipped without them
    if (
        step.status == ApprovalStepStatus.PENDING
        and step.request.employee_id != employee.pk
        and _delegators_of(employee, timezone.localdate()).filter(delegator_id=step.approver_id).exists()
    ):
        return step  # a delegate sees what is waiting now, not the delegator's history
    raise Http404("No such approval step.")


def requests_for_requester(user) -> QuerySet[AccessRequest]:
    """The signed-in person's own access requests, newest first, application included."""
    employee = employee_for_user(user)
    if employee is None:
        return AccessRequest.objects.none()
    return AccessRequest.objects.filter(employee=employee).select_related("application")


def request_for_requester(user, pk: int) -> AccessRequest:
    """The request `pk` if it is the signed-in person's own; `Http404` otherwise."""
    request = requests_for_requester(user).filter(pk=pk).first()
    if request is None:
        raise Http404("No such access request.")
    return request


def delegations_for_delegator(user) -> QuerySet[ApprovalDelegation]:
    employee = employee_for_user(user)
    if employee is None:
        return ApprovalDelegation.objects.none()
    return ApprovalDelegation.objects.filter(delegator=employee).select_related("delegate")


def delegation_for_delegator(user, pk: int) -> ApprovalDelegation:
    """The delegation `pk` if the signed-in person gave it; `Http404` otherwise (a delegate cannot cancel it)."""
    delegation = delegations_for_delegator(user).filter(pk=pk).first()
    if delegation is None:
        raise Http404("No such delegation.")
    return delegation


def delegations_received(user) -> QuerySet[ApprovalDelegation]:
    """Delegations to the signed-in person that have not ended."""
    employee = employee_for_user(user)
    if employee is None:
        return ApprovalDelegation.objects.none()
    return ApprovalDelegation.objects.filter(
        delegate=employee, cancelled_at__isnull=True, ends_on__gte=timezone.localdate()
    ).select_related("delegator")


def applications_owned_by(user) -> QuerySet[Application]:
    """Applications the signed-in person owns."""
    employee = employee_for_user(user)
    if employee is None:
        return Application.objects.none()
    return Application.objects.filter(owner=employee)


def application_for_owner(user, pk: int) -> Application:
    """The application `pk` if the signed-in person owns it; `Http404` otherwise."""
    application = applications_owned_by(user).filter(pk=pk).first()
    if application is None:
        raise Http404("No such application.")
    return application


def holders_of(application: Application) -> QuerySet[Entitlement]:
    """Who holds live access to `application`, with last use and source; the holder in the same query."""
    return (
        Entitlement.objects.filter(application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
        .select_related("employee__department")
        .order_by("employee__last_name", "employee__first_name", "pk")
    )


def requestable_applications() -> QuerySet[Application]:
    return Application.objects.filter(requestable=True).order_by("name")


def review_item_for_reviewer(user, pk: int):
    """The open review item `pk` if `user` reviews it now (their own, or delegated to them in force),
    never one about their own access; else `Http404`, so another person's item tells nothing."""
    from accounts.services.reviews import review_items_for_reviewer

    employee = employee_for_user(user)
    if employee is None:
        raise Http404("No such review item.")
    item = (
        review_items_for_reviewer(employee)
        .select_related("campaign", "application", "reviewer", "employee__role")
        .filter(pk=pk)
        .first()
    )
    if item is None:
        raise Http404("No such review item.")
    return item
