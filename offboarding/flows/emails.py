"""The lifecycle emails (welcome, manager onboarding, hardware reminders), personalised for the person.

Rendered from `templates/emails/<name>.txt` and sent through `portal.mail`; replies go to IT.
"""

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q

from accounts.models import (
    Employee,
)
from assets.models import HardwareAsset
from offboarding.flows.common import held_by
from offboarding.models import (
    Assignee,
    ChecklistRun,
)
from portal.mail import email_send


def email_addresses(employee: Employee, kinds: list[str]) -> list[str]:
    """The employee's addresses of `kinds` (personal, work, manager, it), in that order, without repeats."""
    found = []
    for kind in kinds:
        address = {
            "personal": employee.personal_email,
            "work": employee.work_email,
            "manager": employee.manager.work_email if employee.manager_id else "",
            "it": settings.IT_TEAM_EMAIL,
        }.get(kind, "")
        if address and address.lower() not in {a.lower() for a in found}:
            found.append(address)
    return found


def email_context(employee: Employee, run: ChecklistRun | None = None) -> dict:
    """What the lifecycle emails are personalised with: the person, their role and department, their
    birthright applications (with knowledge-base links), their kit and their onboarding tasks."""
    employee = Employee.objects.select_related("role", "department", "location", "manager").get(pk=employee.pk)
    applications = (
        [ra.application for ra in employee.role.birthrights.select_related("application").order_by("application__name")]
        if employee.role_id
        else []
    )
    kit = list(HardwareAsset.objects.filter(Q(reserved_for=employee) | held_by(employee)).select_related("model"))
    tasks = list(run.tasks.filter(parent__isnull=True).order_by("due_at", "pk")) if run else []
    base = settings.PORTAL_BASE_URL.rstrip("/")
    return {
        "employee": employee,
        "first_name": employee.preferred_name or employee.first_name,
        "role": employee.role,
        "department": employee.department,
        "location": employee.location,
        "manager": employee.manager,
        "applications": applications,
        "kit": kit,
        "employee_tasks": [t for t in tasks if t.assignee_type == Assignee.EMPLOYEE],
        "manager_tasks": [t for t in tasks if t.assignee_type == Assignee.MANAGER],
        "portal_url": f"{base}/",
        "it_email": settings.IT_TEAM_EMAIL,
        "run": run,
    }


def lifecycle_email_send(
    *,
    template: str,
    employee: Employee,
    to: list[str],
    run: ChecklistRun | None = None,
    context: dict | None = None,
    key: str | None = None,
) -> EmailMessage:
    """Render `templates/emails/<template>.txt` (first line: the subject) and send it.

    Replies go to the IT team. With `key` (e.g. the checklist task's), a second call sends nothing.
    """
    return email_send(template=template, to=to, context={**email_context(employee, run), **(context or {})}, key=key)
