"""What each user may see through the API: the same rules as the pages, built from the same helpers.

- Staff (`is_staff`, as the admin asks) with the model's view permission from their group (IT admin,
  IT helpdesk, auditor) see every row, as in the admin; a scoped helpdesk (`accounts.AdminScope`) the rows
  inside its scope, through the admin's own helper (`accounts.scoping.restrict`).
- Everyone else sees what self-service shows them: themselves and their direct reports
  (`offboarding.access.reports_for_manager`), their own and their team's live access and hardware, the
  holders of the applications they own, their own requests and those waiting for (or decided by) them
  (`accounts.access`), their own tasks (`offboarding.access.tasks_for_user`) and check-outs, and the
  requestable catalog. Departments, locations and roles: those of the people they may see.

Each function returns a queryset: one query for the rows whatever their number (ids of the scope come
as subqueries). A row outside it answers 404, like a row that does not exist.
"""

from django.db.models import Q, QuerySet

from accounts import access as account_access
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    Application,
    ApprovalStep,
    ApprovalStepStatus,
    Department,
    Employee,
    Entitlement,
    Location,
    Role,
)
from accounts.scoping import restrict
from accounts.selectors import employee_for_user
from assets.models import HELD_STATUSES, AssetCheckout, HardwareAsset, License
from assets.selectors import licenses_with_usage
from offboarding import access as offboarding_access
from offboarding.models import ChecklistRun, RunStatus, Task
from offboarding.selectors import runs_with_progress


def is_staff_with(user, perm: str) -> bool:
    """True for an active staff login holding `perm` (e.g. "accounts.view_employee"), as the admin decides."""
    return bool(user and user.is_active and user.is_staff and user.has_perm(perm))


def sees_all(user, model) -> bool:
    return is_staff_with(user, f"{model._meta.app_label}.view_{model._meta.model_name}")


def _team_ids(user):
    return offboarding_access.reports_for_manager(user).order_by().values("pk")


def employees_for(user) -> QuerySet[Employee]:
    qs = Employee.objects.select_related("department", "location", "role", "manager")
    if sees_all(user, Employee):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    return qs.filter(Q(pk=me.pk) | Q(pk__in=_team_ids(user)))


def _of_visible_people(user, model, field: str) -> QuerySet:
    if sees_all(user, model):
        return restrict(model.objects.all(), user)
    return model.objects.filter(pk__in=employees_for(user).order_by().values(field))


def departments_for(user) -> QuerySet[Department]:
    return _of_visible_people(user, Department, "department_id").select_related("parent", "head")


def locations_for(user) -> QuerySet[Location]:
    return _of_visible_people(user, Location, "location_id")


def roles_for(user) -> QuerySet[Role]:
    return _of_visible_people(user, Role, "role_id")


def entitlements_for(user) -> QuerySet[Entitlement]:
    qs = Entitlement.objects.select_related("employee", "application")
    if sees_all(user, Entitlement):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    return qs.filter(
        Q(employee=me) | Q(employee__in=_team_ids(user)) | Q(application__owner=me),
        status__in=LIVE_ENTITLEMENT_STATUSES,
    )


def applications_for(user) -> QuerySet[Application]:
    qs = Application.objects.select_related("owner")
    if sees_all(user, Application):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    held = entitlements_for(user).order_by().values("application_id")
    return qs.filter(
        Q(pk__in=account_access.requestable_applications().order_by().values("pk")) | Q(owner=me) | Q(pk__in=held)
    )


def access_requests_for(user) -> QuerySet[AccessRequest]:
    qs = AccessRequest.objects.select_related("employee", "application")
    if sees_all(user, AccessRequest):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    # `step_for_decider`'s rule as a set: steps decidable now (own or delegated), steps they decided, and
    # their own steps once it was their turn.
    steps = ApprovalStep.objects.filter(
        Q(pk__in=account_access.steps_for_decider(user, employee=me).order_by().values("pk"))
        | Q(decided_by=user)
        | Q(approver=me, status__in=[ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED])
    )
    own = account_access.requests_for_requester(user).order_by().values("pk")
    return qs.filter(Q(pk__in=own) | Q(pk__in=steps.order_by().values("request_id")))


def hardware_for(user) -> QuerySet[HardwareAsset]:
    qs = HardwareAsset.objects.select_related("model", "assigned_to", "location")
    if sees_all(user, HardwareAsset):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    return qs.filter(Q(assigned_to=me) | Q(assigned_to__in=_team_ids(user)), status__in=HELD_STATUSES)


def checkouts_for(user) -> QuerySet[AssetCheckout]:
    qs = AssetCheckout.objects.select_related("asset", "employee")
    if sees_all(user, AssetCheckout):
        return restrict(qs, user)
    me = employee_for_user(user)
    if me is None:
        return qs.none()
    return qs.filter(employee=me)


def licenses_for(user) -> QuerySet[License]:
    if sees_all(user, License):
        return restrict(licenses_with_usage(), user)
    return License.objects.none()


def runs_for(user) -> QuerySet[ChecklistRun]:
    qs = runs_with_progress().select_related("employee")
    if sees_all(user, ChecklistRun):
        return restrict(qs, user)
    # The team page: each report's open checklists.
    return qs.filter(employee__in=_team_ids(user), status=RunStatus.RUNNING)


def tasks_for(user) -> QuerySet[Task]:
    qs = Task.objects.select_related("run", "assignee")
    if sees_all(user, Task):
        return restrict(qs, user)
    return qs.filter(pk__in=offboarding_access.tasks_for_user(user).order_by().values("pk"))
