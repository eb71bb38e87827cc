"""The demo company's checklists (demo.checklists): idempotent, role extras scoped, the leave steps in order."""

import pytest

from accounts.tests.factories import RoleFactory
from demo.checklists import demo_templates_sync
from offboarding.flows.leaver import LEAVER_STEPS
from offboarding.models import ChecklistTemplate, TaskTemplate

pytestmark = pytest.mark.django_db


def test_demo_templates_sync_is_idempotent_and_scopes_role_extras():
    RoleFactory(name="Software Engineer", code="software-engineer")
    RoleFactory(name="Sales", code="sales")
    first = demo_templates_sync()
    counts = (ChecklistTemplate.objects.count(), TaskTemplate.objects.count())
    assert demo_templates_sync() == first
    assert (ChecklistTemplate.objects.count(), TaskTemplate.objects.count()) == counts
    assert {t.kind for t in ChecklistTemplate.objects.all()} == {"join", "move", "leave"}
    sales = ChecklistTemplate.objects.get(name="Joiner — sales")
    assert list(sales.roles.values_list("code", flat=True)) == ["sales"]
    leave = ChecklistTemplate.objects.get(kind="leave")
    actions = [t.action for t in leave.task_templates.exclude(action="").order_by("position")]
    assert actions == [step.action for step in LEAVER_STEPS]


def test_the_demo_leave_template_waits_only_for_what_each_step_needs():
    """The demo's leaver: login, then status, then the rest side by side; nothing waits for the revocations."""
    demo_templates_sync()
    leave = ChecklistTemplate.objects.get(kind="leave")
    needs = {t.key: {d.key for d in t.depends_on.all()} for t in leave.task_templates.all()}
    for step in LEAVER_STEPS:
        assert needs[step.key] == set(step.after), step.key
    assert [key for key, deps in needs.items() if "revoke-access" in deps] == []
    manual = leave.task_templates.exclude(assignee="system")
    assert {t.key for t in manual} == {"manager-handover", "archive-mailbox"}
