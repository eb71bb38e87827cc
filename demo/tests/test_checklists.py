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
