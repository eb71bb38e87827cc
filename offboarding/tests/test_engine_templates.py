"""Checklist templates (offboarding.engine.templates): validation in the service and in the admin.

Bad input (a dependency cycle, an unknown action, a dependency on another checklist's task)
is refused at save time with the reason, and nothing of the save is kept.
"""

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import EmploymentType
from accounts.tests.factories import DepartmentFactory, RoleFactory
from offboarding import engine
from offboarding.models import Assignee, ChecklistKind, ChecklistTemplate, TaskTemplate

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:offboarding_checklisttemplate_add")
PREFIX = "task_templates"


def change_url(template):
    return reverse("admin:offboarding_checklisttemplate_change", args=[template.pk])


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def task_row(**values):
    row = {
        "id": "",
        "position": "0",
        "key": "",
        "title": "",
        "assignee": Assignee.IT,
        "action": "",
        "due_offset_days": "0",
        "max_attempts": "",
        "instructions": "",
        "knowledge_url": "",
        "params": "{}",
        "depends_on": [],
    }
    row.update(values)
    return row


def form_data(*, rows, initial=0, name="Leaver basics", kind=ChecklistKind.LEAVE, **fields):
    data = {
        "name": name,
        "kind": kind,
        "description": "",
        "is_active": "on",
        f"{PREFIX}-TOTAL_FORMS": str(len(rows)),
        f"{PREFIX}-INITIAL_FORMS": str(initial),
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"{PREFIX}-{i}-{key}"] = value
    return data


def existing_rows(template, **changes):
    """The formset rows of a saved template's tasks, with `changes[key]` merged into that task's row."""
    rows = []
    for task in template.task_templates.order_by("position", "id"):
        row = task_row(
            id=str(task.pk),
            checklist=str(template.pk),
            position=str(task.position),
            key=task.key,
            title=task.title,
            assignee=task.assignee,
            action=task.action,
            due_offset_days=str(task.due_offset_days),
            depends_on=[str(d.pk) for d in task.depends_on.all()],
        )
        row.update(changes.get(task.key, {}))
        rows.append(row)
    return rows


@pytest.fixture
def chain():
    """A saved template: a → b → c (c depends on b, b on a)."""
    template = ChecklistTemplate.objects.create(name="Chain", kind=ChecklistKind.LEAVE)
    a = TaskTemplate.objects.create(checklist=template, key="a", title="A", position=0)
    b = TaskTemplate.objects.create(checklist=template, key="b", title="B", position=1)
    c = TaskTemplate.objects.create(checklist=template, key="c", title="C", position=2)
    b.depends_on.add(a)
    c.depends_on.add(b)
    return template


# --- The service ---------------------------------------------------------------------------------


def test_dependency_cycle_finds_cycles_of_any_length():
    assert engine.dependency_cycle({1: [2], 2: [3], 3: []}) is None
    assert engine.dependency_cycle({1: [1]}, {1: "self"}) == ["self", "self"]
    assert engine.dependency_cycle({1: [2], 2: [3], 3: [1]}, {1: "a", 2: "b", 3: "c"}) == ["a", "b", "c", "a"]
    long_chain = {n: [n + 1] for n in range(5000)}
    assert engine.dependency_cycle(long_chain) is None  # no recursion limit
    long_chain[5000] = [0]
    assert len(engine.dependency_cycle(long_chain)) == 5002


def test_template_validate_refuses_a_cycle(chain):
    engine.template_validate(template=chain)
    chain.task_templates.get(key="a").depends_on.add(chain.task_templates.get(key="c"))
    with pytest.raises(ValidationError, match="cycle: a → c → b → a|cycle: . → . → . → ."):
        engine.template_validate(template=chain)


def test_template_validate_refuses_a_dependency_on_another_checklist(chain):
    other = ChecklistTemplate.objects.create(name="Other", kind=ChecklistKind.LEAVE)
    foreign = TaskTemplate.objects.create(checklist=other, key="x", title="X")
    chain.task_templates.get(key="a").depends_on.add(foreign)
    with pytest.raises(ValidationError, match="'a' depends on tasks of another checklist: x"):
        engine.template_validate(template=chain)


def test_template_validate_refuses_an_unknown_action(chain):
    TaskTemplate.objects.filter(checklist=chain, key="b").update(action="does_not_exist")
    with pytest.raises(ValidationError, match="Task 'b': Unknown action 'does_not_exist'"):
        engine.template_validate(template=chain)


def test_a_task_template_refuses_an_unknown_action_and_a_system_task_without_action():
    template = ChecklistTemplate.objects.create(name="T", kind=ChecklistKind.JOIN)
    with pytest.raises(ValidationError, match="Unknown action"):
        TaskTemplate(checklist=template, key="k", title="K", action="nope").full_clean()
    with pytest.raises(ValidationError, match="needs an automated action"):
        TaskTemplate(checklist=template, key="k", title="K", assignee=Assignee.SYSTEM).full_clean()
    with pytest.raises(ValidationError, match="employment_types|Give a list"):
        ChecklistTemplate(name="U", kind=ChecklistKind.JOIN, employment_types=["astronaut"]).full_clean()


# --- The admin -----------------------------------------------------------------------------------


def test_it_admin_creates_a_template_with_scopes_tasks_and_employment_type_checkboxes(client, it_admin):
    role, department = RoleFactory(), DepartmentFactory()
    client.force_login(it_admin)
    page = client.get(ADD_URL)
    assert page.status_code == 200
    assert 'type="checkbox" name="employment_types" value="contractor"' in page.content.decode()
    data = form_data(
        rows=[
            task_row(key="disable", title="Disable login", assignee=Assignee.SYSTEM, action="test_count"),
            task_row(key="badge", title="Collect the badge", position="1", due_offset_days="-2"),
        ],
        roles=[str(role.pk)],
        departments=[str(department.pk)],
        employment_types=[EmploymentType.CONTRACTOR, EmploymentType.INTERN],
    )
    response = client.post(ADD_URL, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    template = ChecklistTemplate.objects.get(name="Leaver basics")
    assert template.employment_types == [EmploymentType.CONTRACTOR, EmploymentType.INTERN]
    assert list(template.roles.all()) == [role] and list(template.departments.all()) == [department]
    assert set(template.task_templates.values_list("key", "action", "due_offset_days")) == {
        ("disable", "test_count", 0),
        ("badge", "", -2),
    }
    assert template.history.first().history_user == it_admin


def test_dependencies_offered_are_the_tasks_of_the_same_template_only(client, it_admin, chain):
    other = ChecklistTemplate.objects.create(name="Other", kind=ChecklistKind.LEAVE)
    TaskTemplate.objects.create(checklist=other, key="foreign", title="Foreign")
    client.force_login(it_admin)
    response = client.get(change_url(chain))
    formset = response.context["inline_admin_formsets"][0].formset
    offered = {form.instance.key: {t.key for t in form.fields["depends_on"].queryset} for form in formset.forms}
    assert offered == {"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}}


def test_a_dependency_cycle_is_refused_in_the_admin_and_nothing_is_saved(client, it_admin, chain):
    a = chain.task_templates.get(key="a")
    c = chain.task_templates.get(key="c")
    client.force_login(it_admin)
    rows = existing_rows(
        chain,
        a={"depends_on": [str(c.pk)], "title": "A renamed"},
    )
    response = client.post(change_url(chain), form_data(rows=rows, initial=3, name="Chain renamed"))
    assert response.status_code == 200
    errors = " ".join(str(e) for e in response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert "The tasks depend on each other in a cycle" in errors
    assert "a → c → b → a" in errors
    chain.refresh_from_db()
    a.refresh_from_db()
    assert chain.name == "Chain" and a.title == "A" and list(a.depends_on.all()) == []


def test_an_unknown_action_is_refused_in_the_admin(client, it_admin, chain):
    client.force_login(it_admin)
    rows = existing_rows(chain, b={"action": "rm_rf"})
    response = client.post(change_url(chain), form_data(rows=rows, initial=3, name="Chain"))
    assert response.status_code == 200
    form_b = [f for f in response.context["inline_admin_formsets"][0].formset.forms if f.instance.key == "b"][0]
    assert "action" in form_b.errors
    assert not TaskTemplate.objects.filter(action="rm_rf").exists()


def test_an_action_that_no_longer_exists_is_shown_and_must_be_replaced(client, it_admin, chain):
    TaskTemplate.objects.filter(checklist=chain, key="b").update(action="retired_action")
    client.force_login(it_admin)
    page = client.get(change_url(chain)).content.decode()
    assert "unknown action “retired_action”" in page
    rows = existing_rows(chain)
    response = client.post(change_url(chain), form_data(rows=rows, initial=3, name="Chain"))
    assert response.status_code == 200  # refused, not silently blanked
    assert TaskTemplate.objects.get(checklist=chain, key="b").action == "retired_action"


def test_deleting_a_task_others_depend_on_is_refused(client, it_admin, chain):
    client.force_login(it_admin)
    rows = existing_rows(chain, b={"DELETE": "on"})
    response = client.post(change_url(chain), form_data(rows=rows, initial=3, name="Chain"))
    assert response.status_code == 200
    errors = " ".join(str(e) for e in response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert "Task 'c' depends on 'b', which you are deleting" in errors
    assert chain.task_templates.count() == 3


def test_a_save_the_service_rejects_is_rolled_back_whole(client, it_admin, chain, monkeypatch):
    """The service check after saving is the last line: if it refuses, nothing of the save stays."""

    def refuse(*, template):
        raise ValidationError("The tasks depend on each other in a cycle: x → y → x.")

    monkeypatch.setattr(engine, "template_validate", refuse)
    client.force_login(it_admin)
    rows = existing_rows(chain, a={"title": "A renamed"}) + [task_row(key="d", title="D", position="3")]
    response = client.post(change_url(chain), form_data(rows=rows, initial=3, name="Chain renamed"))
    assert response.status_code == 302
    assert texts(response) == ["Nothing was saved: The tasks depend on each other in a cycle: x → y → x."]
    chain.refresh_from_db()
    assert chain.name == "Chain"
    assert set(chain.task_templates.values_list("key", "title")) == {("a", "A"), ("b", "B"), ("c", "C")}
    assert chain.history.count() == 1


def test_helpdesk_and_auditor_only_view_templates(client, helpdesk, auditor, chain):
    for user in (helpdesk, auditor):
        client.force_login(user)
        assert client.get(change_url(chain)).status_code == 200
        assert client.post(change_url(chain), form_data(rows=[], name="X")).status_code == 403
    chain.refresh_from_db()
    assert chain.name == "Chain"


def test_template_list_shows_task_count_and_scope(client, it_admin, chain):
    chain.roles.add(RoleFactory(name="Engineer"))
    chain.employment_types = [EmploymentType.INTERN]
    chain.save()
    client.force_login(it_admin)
    page = client.get(reverse("admin:offboarding_checklisttemplate_changelist")).content.decode()
    assert "Engineer · Intern" in page
    assert '<td class="field-task_count">3</td>' in page
