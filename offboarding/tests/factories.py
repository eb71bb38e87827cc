"""factory_boy factories for offboarding models, and builders for the standard checklists tests run.

`joiner_templates()` and `leaver_template()` build the join and leave checklists a company
typically has (the same steps the demo company uses), so flow tests run real templates without
importing the demo layer.
"""

import datetime

import factory
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import EmployeeFactory
from assets.tests.factories import HardwareAssetFactory
from offboarding import engine, models
from offboarding.models import Assignee, ChecklistKind

KB = "https://kb.example.com"


class ChecklistTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ChecklistTemplate
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Checklist {n}")
    kind = ChecklistKind.LEAVE


class TaskTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.TaskTemplate

    checklist = factory.SubFactory(ChecklistTemplateFactory)
    key = factory.Sequence(lambda n: f"step-{n}")
    title = factory.LazyAttribute(lambda o: f"Step {o.key}")
    assignee = Assignee.IT


class ChecklistRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ChecklistRun

    employee = factory.SubFactory(EmployeeFactory)
    kind = ChecklistKind.LEAVE
    event_date = factory.LazyFunction(timezone.localdate)
    effective_at = factory.LazyFunction(timezone.now)


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Task

    run = factory.SubFactory(ChecklistRunFactory)
    key = factory.Sequence(lambda n: f"task-{n}")
    title = factory.LazyAttribute(lambda o: f"Task {o.key}")
    due_at = factory.LazyFunction(timezone.now)


class HardwareReturnFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.HardwareReturn

    employee = factory.SubFactory(EmployeeFactory)
    asset = factory.SubFactory(HardwareAssetFactory)
    due_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=7))


class ChangeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ChangeRequest

    employee = factory.SubFactory(EmployeeFactory)
    requested_by = factory.SubFactory(EmployeeFactory)
    kind = models.ChangeRequestKind.LEAVE
    effective_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=14))
    reason = "Leaving for another company."


# --- Standard checklists --------------------------------------------------------------------------


def checklist_build(name: str, kind: str, steps: list[dict], roles: list[Role] = ()) -> models.ChecklistTemplate:
    """A template named `name` with one task template per step (`key`, `title`, optional `after`:
    keys it depends on, and any TaskTemplate field), in order. Idempotent by name and key."""
    template = ChecklistTemplateFactory(name=name, kind=kind)
    template.roles.set(roles)
    by_key = {}
    for position, step in enumerate(steps):
        fields = {k: v for k, v in step.items() if k not in ("key", "after")}
        task, _ = models.TaskTemplate.objects.update_or_create(
            checklist=template, key=step["key"], defaults={"position": position, "assignee": Assignee.SYSTEM, **fields}
        )
        task.full_clean()
        by_key[step["key"]] = task
    for step in steps:
        by_key[step["key"]].depends_on.set([by_key[key] for key in step.get("after", ())])
    return template


def _email(key, title, offset, template, to, **params):
    return {
        "key": key,
        "title": title,
        "action": "send_email",
        "due_offset_days": offset,
        "params": {"template": template, "to": to, **params},
    }


JOINER_STEPS = [
    {"key": "reserve-kit", "title": "Reserve the role's hardware kit", "action": "reserve_kit", "due_offset_days": -21},
    {
        "key": "provision-access",
        "title": "Provision the role's birthright access",
        "action": "provision_birthrights",
        "due_offset_days": -3,
    },
    _email("manager-briefing", "Brief the manager", -5, "manager_onboarding", ["manager"]),
    _email(
        "welcome-before",
        "Welcome email before day one (personal address)",
        -3,
        "welcome_before_day_one",
        ["personal"],
        only_before_event=True,
    ),
    {
        "key": "prepare-first-week",
        "title": "Prepare the first week: buddy, introductions, first project",
        "assignee": Assignee.MANAGER,
        "due_offset_days": -2,
        "instructions": "Pick a buddy, book introductions with the team and key partners, choose a first project.",
        "knowledge_url": f"{KB}/managers/onboarding-first-week",
    },
    {
        "key": "hand-over-kit",
        "title": "Hand over the reserved hardware",
        "assignee": Assignee.IT,
        "after": ("reserve-kit",),
        "instructions": "Check the reserved assets out to the joiner (Hardware → Check out) and set them up together.",
        "knowledge_url": f"{KB}/it/hardware-handover",
    },
    {"key": "activate", "title": "Activate the employee", "action": "activate_employee"},
    _email("welcome-day-one", "Welcome email on day one", 0, "welcome_day_one", ["work"]),
    {
        "key": "security-training",
        "title": "Complete the security awareness training",
        "assignee": Assignee.EMPLOYEE,
        "due_offset_days": 4,
        "instructions": "About 30 minutes: phishing, passwords and MFA, handling customer data.",
        "knowledge_url": f"{KB}/security/awareness-training",
    },
    {
        "key": "accept-policies",
        "title": "Read and accept the IT acceptable-use policy",
        "assignee": Assignee.EMPLOYEE,
        "due_offset_days": 2,
        "knowledge_url": f"{KB}/policies/acceptable-use",
    },
    _email("welcome-week-one", "End of week one email", 4, "welcome_week_one", ["work"]),
    {
        "key": "first-week-check-in",
        "title": "First-week check-in with the new joiner",
        "assignee": Assignee.MANAGER,
        "due_offset_days": 4,
        "knowledge_url": f"{KB}/managers/onboarding-check-in",
    },
]

ENGINEERING_JOINER_STEPS = [
    {
        "key": "dev-setup",
        "title": "Set up the development environment",
        "assignee": Assignee.EMPLOYEE,
        "due_offset_days": 1,
        "knowledge_url": f"{KB}/engineering/dev-environment",
    },
    {
        "key": "code-review-training",
        "title": "Pair on a first code review",
        "assignee": Assignee.MANAGER,
        "due_offset_days": 3,
        "knowledge_url": f"{KB}/engineering/code-review",
    },
    {
        "key": "on-call-shadow",
        "title": "Add to the on-call rota as a shadow",
        "assignee": Assignee.MANAGER,
        "due_offset_days": 14,
        "knowledge_url": f"{KB}/engineering/on-call",
    },
]

LEAVER_STEPS = [
    {"key": "disable-login", "title": "Disable login and end sessions", "action": "disable_login"},
    {
        "key": "set-terminated",
        "title": "Set the status to terminated",
        "action": "mark_terminated",
        "after": ("disable-login",),
    },
    {
        "key": "revoke-access",
        "title": "Revoke every entitlement through its connector",
        "action": "revoke_all_access",
        "after": ("set-terminated",),
    },
    {
        "key": "hand-over",
        "title": "Hand pending approvals and owned applications to the manager",
        "action": "hand_over_approvals",
        "after": ("set-terminated",),
    },
    {
        "key": "hardware-returns",
        "title": "Open a hardware return per asset held",
        "action": "create_hardware_returns",
        "after": ("set-terminated",),
    },
    {
        "key": "remind-returns",
        "title": "Remind the leaver to return hardware",
        "action": "remind_hardware_returns",
        "after": ("hardware-returns",),
    },
    {
        "key": "schedule-purge",
        "title": "Record the retention purge date",
        "action": "schedule_purge",
        "after": ("set-terminated",),
    },
    {
        "key": "manager-handover",
        "title": "Collect the leaver's handover notes and shared files",
        "assignee": Assignee.MANAGER,
        "due_offset_days": -3,
        "knowledge_url": f"{KB}/managers/offboarding",
    },
    {
        "key": "archive-mailbox",
        "title": "Archive the mailbox and set an auto-reply",
        "assignee": Assignee.IT,
        "due_offset_days": 1,
        "after": ("revoke-access",),
        "knowledge_url": f"{KB}/it/mailbox-archive",
    },
]


def joiner_templates(*, engineering_roles: list[Role] | None = None) -> list[models.ChecklistTemplate]:
    """The join checklist for everyone, and the engineers' extra one for `engineering_roles`
    (default: the role with code `software-engineer`, if there is one)."""
    if engineering_roles is None:
        engineering_roles = list(Role.objects.filter(code="software-engineer"))
    templates = [checklist_build("Joiner — everyone", ChecklistKind.JOIN, JOINER_STEPS)]
    if engineering_roles:
        templates.append(
            checklist_build(
                "Joiner — software engineers", ChecklistKind.JOIN, ENGINEERING_JOINER_STEPS, engineering_roles
            )
        )
    return templates


def leaver_template() -> models.ChecklistTemplate:
    """The leave checklist for everyone: the cut-off steps in order, then the people's tasks."""
    return checklist_build("Leaver — everyone", ChecklistKind.LEAVE, LEAVER_STEPS)


def lifecycle_templates() -> None:
    """The join and leave checklists, as `joiner_templates()` and `leaver_template()` build them."""
    joiner_templates()
    leaver_template()


# --- Engine test templates (the actions are in offboarding.tests.actions) -------------------------


def make_template(kind=ChecklistKind.LEAVE, name=None, **scopes) -> models.ChecklistTemplate:
    """A template with two automated tasks: `first`, then `second` (depends on first)."""
    template = models.ChecklistTemplate.objects.create(
        name=name or f"T {kind} {models.ChecklistTemplate.objects.count()}", kind=kind
    )
    for field in ("roles", "departments", "locations"):
        if field in scopes:
            getattr(template, field).set(scopes[field])
    if "employment_types" in scopes:
        template.employment_types = scopes["employment_types"]
        template.save()
    first = TaskTemplateFactory(
        checklist=template, key="first", title="First", assignee=Assignee.SYSTEM, action="test_count"
    )
    second = TaskTemplateFactory(
        checklist=template, key="second", title="Second", assignee=Assignee.SYSTEM, action="test_count", position=1
    )
    second.depends_on.add(first)
    return template


def one_task_template(kind=ChecklistKind.LEAVE, **task) -> models.ChecklistTemplate:
    """A template with one task (by default automated, `test_count`, key `only`)."""
    template = models.ChecklistTemplate.objects.create(
        name=f"One {kind} {models.ChecklistTemplate.objects.count()}", kind=kind
    )
    fields = {"key": "only", "title": "Only", "assignee": Assignee.SYSTEM, "action": "test_count", **task}
    TaskTemplateFactory(checklist=template, **fields)
    return template


def start(employee, kind=ChecklistKind.LEAVE, *, effective_at=None, acting_user=None) -> models.ChecklistRun:
    """`engine.run_start` for `employee`, effective now (or at `effective_at`)."""
    effective_at = effective_at or timezone.now()
    return engine.run_start(
        employee=employee,
        kind=kind,
        event_date=timezone.localdate(effective_at),
        acting_user=acting_user,
        effective_at=effective_at,
    )
