"""Demo checklist templates for joiners, movers and leavers (called from `seed_demo`).

`demo_templates_sync()` is idempotent: templates are found by name, their task templates by
key, and brought back to what is written here (extra task templates IT added are kept).
Role-specific extras are created only for roles that exist (software engineers and sales in
the demo company).
"""

from dataclasses import dataclass, field

from django.db import transaction

from accounts.models import Role
from offboarding.models import Assignee, ChecklistKind, ChecklistTemplate, TaskTemplate

KB = "https://kb.helix.example"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    assignee: str = Assignee.SYSTEM
    action: str = ""
    offset: int = 0
    params: dict = field(default_factory=dict)
    after: tuple[str, ...] = ()
    instructions: str = ""
    knowledge_url: str = ""


@dataclass(frozen=True)
class Template:
    name: str
    kind: str
    description: str
    steps: tuple[Step, ...]
    role_codes: tuple[str, ...] = ()


JOINER = Template(
    "Joiner — everyone",
    ChecklistKind.JOIN,
    "Access, hardware, welcome emails and first-week tasks for every new employee.",
    (
        Step("reserve-kit", "Reserve the role's hardware kit", action="reserve_kit", offset=-21),
        Step("provision-access", "Provision the role's birthright access", action="provision_birthrights", offset=-3),
        Step(
            "manager-briefing",
            "Brief the manager",
            action="send_email",
            offset=-5,
            params={"template": "manager_onboarding", "to": ["manager"]},
        ),
        Step(
            "welcome-before",
            "Welcome email before day one (personal address)",
            action="send_email",
            offset=-3,
            params={"template": "welcome_before_day_one", "to": ["personal"], "only_before_event": True},
        ),
        Step(
            "prepare-first-week",
            "Prepare the first week: buddy, introductions, first project",
            assignee=Assignee.MANAGER,
            offset=-2,
            instructions="Pick a buddy, book introductions with the team and key partners, choose a first project.",
            knowledge_url=f"{KB}/managers/onboarding-first-week",
        ),
        Step(
            "hand-over-kit",
            "Hand over the reserved hardware",
            assignee=Assignee.IT,
            offset=0,
            after=("reserve-kit",),
            instructions="Check the reserved assets out to the joiner (Hardware → Check out) and set them up together.",
            knowledge_url=f"{KB}/it/hardware-handover",
        ),
        Step("activate", "Activate the employee", action="activate_employee", offset=0),
        Step(
            "welcome-day-one",
            "Welcome email on day one",
            action="send_email",
            offset=0,
            params={"template": "welcome_day_one", "to": ["work"]},
        ),
        Step(
            "security-training",
            "Complete the security awareness training",
            assignee=Assignee.EMPLOYEE,
            offset=4,
            instructions="About 30 minutes: phishing, passwords and MFA, handling customer data.",
            knowledge_url=f"{KB}/security/awareness-training",
        ),
        Step(
            "accept-policies",
            "Read and accept the IT acceptable-use policy",
            assignee=Assignee.EMPLOYEE,
            offset=2,
            knowledge_url=f"{KB}/policies/acceptable-use",
        ),
        Step(
            "welcome-week-one",
            "End of week one email",
            action="send_email",
            offset=4,
            params={"template": "welcome_week_one", "to": ["work"]},
        ),
        Step(
            "first-week-check-in",
            "First-week check-in with the new joiner",
            assignee=Assignee.MANAGER,
            offset=4,
            knowledge_url=f"{KB}/managers/onboarding-check-in",
        ),
    ),
)

JOINER_ENGINEERING = Template(
    "Joiner — software engineers",
    ChecklistKind.JOIN,
    "Developer tooling and on-call for engineers.",
    (
        Step(
            "dev-setup",
            "Set up the development environment",
            assignee=Assignee.EMPLOYEE,
            offset=1,
            knowledge_url=f"{KB}/engineering/dev-environment",
        ),
        Step(
            "code-review-training",
            "Pair on a first code review",
            assignee=Assignee.MANAGER,
            offset=3,
            knowledge_url=f"{KB}/engineering/code-review",
        ),
        Step(
            "on-call-shadow",
            "Add to the on-call rota as a shadow",
            assignee=Assignee.MANAGER,
            offset=14,
            knowledge_url=f"{KB}/engineering/on-call",
        ),
    ),
    role_codes=("software-engineer", "engineering-manager"),
)

JOINER_SALES = Template(
    "Joiner — sales",
    ChecklistKind.JOIN,
    "CRM and product training for sales.",
    (
        Step(
            "crm-training",
            "Complete the CRM training",
            assignee=Assignee.EMPLOYEE,
            offset=2,
            knowledge_url=f"{KB}/sales/crm-basics",
        ),
        Step(
            "territory",
            "Assign accounts and territory",
            assignee=Assignee.MANAGER,
            offset=3,
            knowledge_url=f"{KB}/sales/territories",
        ),
    ),
    role_codes=("sales",),
)

MOVER = Template(
    "Mover — everyone",
    ChecklistKind.MOVE,
    "A change of role, department or manager. Access changes are added to the run by the move itself "
    "(additions now, revocations after the grace period).",
    (
        Step(
            "review-access",
            "Review the mover's access for the new role",
            assignee=Assignee.MANAGER,
            offset=0,
            knowledge_url=f"{KB}/managers/access-review",
        ),
        Step(
            "review-hardware",
            "Check the hardware fits the new role",
            assignee=Assignee.IT,
            offset=1,
            knowledge_url=f"{KB}/it/role-kits",
        ),
        Step(
            "hand-over-work",
            "Hand over work of the previous role",
            assignee=Assignee.EMPLOYEE,
            offset=5,
            knowledge_url=f"{KB}/handover",
        ),
    ),
)

LEAVER = Template(
    "Leaver — everyone",
    ChecklistKind.LEAVE,
    "At the cut-off the login goes first, then the status; access, approvals, hardware and the retention "
    "purge date then go side by side, so one revocation waiting for IT holds up nothing else. "
    "The run closes once the access is gone, the hardware is back and the people's tasks are done.",
    (
        Step("disable-login", "Disable login and end sessions", action="disable_login"),
        Step("set-terminated", "Set the status to terminated", action="mark_terminated", after=("disable-login",)),
        Step(
            "revoke-access",
            "Revoke every entitlement through its connector",
            action="revoke_all_access",
            after=("set-terminated",),
        ),
        Step(
            "hand-over",
            "Hand pending approvals and owned applications to the manager",
            action="hand_over_approvals",
            after=("set-terminated",),
        ),
        Step(
            "hardware-returns",
            "Open a hardware return per asset held",
            action="create_hardware_returns",
            after=("set-terminated",),
        ),
        Step(
            "remind-returns",
            "Remind the leaver to return hardware",
            action="remind_hardware_returns",
            after=("hardware-returns",),
        ),
        Step(
            "schedule-purge",
            "Record the retention purge date",
            action="schedule_purge",
            after=("set-terminated",),
        ),
        Step(
            "manager-handover",
            "Collect the leaver's handover notes and shared files",
            assignee=Assignee.MANAGER,
            offset=-3,
            knowledge_url=f"{KB}/managers/offboarding",
        ),
        Step(
            "archive-mailbox",
            "Archive the mailbox and set an auto-reply",
            assignee=Assignee.IT,
            offset=1,
            after=("set-terminated",),
            knowledge_url=f"{KB}/it/mailbox-archive",
        ),
    ),
)

TEMPLATES = (JOINER, JOINER_ENGINEERING, JOINER_SALES, MOVER, LEAVER)


@transaction.atomic
def demo_templates_sync() -> dict[str, int]:
    """Create or update the demo checklist templates; returns how many task templates each has."""
    summary = {}
    for spec in TEMPLATES:
        roles = list(Role.objects.filter(code__in=spec.role_codes)) if spec.role_codes else []
        if spec.role_codes and not roles:
            continue  # a role-specific template without its roles would apply to everyone
        template, _ = ChecklistTemplate.objects.update_or_create(
            name=spec.name, defaults={"kind": spec.kind, "description": spec.description, "is_active": True}
        )
        template.roles.set(roles)
        by_key = {}
        for position, step in enumerate(spec.steps):
            task_template, _ = TaskTemplate.objects.update_or_create(
                checklist=template,
                key=step.key,
                defaults={
                    "position": position,
                    "title": step.title,
                    "instructions": step.instructions,
                    "knowledge_url": step.knowledge_url,
                    "assignee": step.assignee,
                    "action": step.action,
                    "params": step.params,
                    "due_offset_days": step.offset,
                },
            )
            task_template.full_clean()
            by_key[step.key] = task_template
        for step in spec.steps:
            by_key[step.key].depends_on.set([by_key[key] for key in step.after])
        summary[spec.name] = len(spec.steps)
    return summary
