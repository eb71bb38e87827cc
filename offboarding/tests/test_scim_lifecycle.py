"""People pushed through SCIM join, move and leave through the same flows IT uses, in the SCIM request's
transaction (accounts' sync hooks, connected in `OffboardingConfig.ready()`)."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import Employee, EmployeeStatus, RoleApplication
from accounts.scim.services import scim_connection_create
from accounts.tests.factories import ApplicationFactory, DepartmentFactory, RoleFactory
from accounts.tests.scim.conftest import ENTERPRISE, Scim, user_body
from offboarding.models import ChecklistKind, ChecklistRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def scim(client):
    connection, token = scim_connection_create(name="Entra ID", acting_user=None)
    scim = Scim(client, token)
    scim.connection = connection
    return scim


def runs(employee_id, kind):
    return list(ChecklistRun.objects.filter(employee_id=employee_id, kind=kind))


def test_a_new_user_starts_a_join_run_by_the_connection(scim):
    user = scim.post("Users", user_body()).json()
    (run,) = runs(user["id"], ChecklistKind.JOIN)
    assert run.started_by == scim.connection.service_user
    assert Employee.objects.get(pk=user["id"]).status == EmployeeStatus.PRE_HIRE


def test_a_user_pushed_inactive_joins_only_when_activated(scim):
    user = scim.post("Users", user_body(active=False)).json()
    assert user["active"] is False and runs(user["id"], ChecklistKind.JOIN) == []
    body = scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "True"}).json()
    assert body["active"] is True and len(runs(user["id"], ChecklistKind.JOIN)) == 1


def test_active_false_starts_the_leaver_run_with_an_immediate_cut_off(scim):
    user = scim.post("Users", user_body()).json()
    before = timezone.now()
    response = scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert response.status_code == 200 and response.json()["active"] is False
    (run,) = runs(user["id"], ChecklistKind.LEAVE)
    assert run.details["immediate"] is True and before <= run.effective_at <= timezone.now()
    assert "Entra ID" in run.details["reason"]
    # ... and a leaver is not brought back by SCIM
    again = scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": "active", "value": True})
    assert again.status_code == 400 and "reactivate" in again.json()["detail"]


def test_a_changed_manager_or_department_applies_a_move_with_its_preview(scim):
    boss = scim.post("Users", user_body(email="boss@example.com", number="B1")).json()
    user = scim.post("Users", user_body(enterprise={"department": "Sales"})).json()
    response = scim.patch(
        f"Users/{user['id']}",
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": boss["id"]},
        {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Finance"},
    )
    assert response.status_code == 200, response.content
    (run,) = runs(user["id"], ChecklistKind.MOVE)
    (move,) = run.details["moves"]
    assert set(move["changes"]) == {"manager", "department"}
    employee = Employee.objects.select_related("department").get(pk=user["id"])
    assert (employee.manager_id, employee.department.name) == (int(boss["id"]), "Finance")


def test_a_group_is_a_role_and_joining_it_moves_the_person_with_its_birthrights(scim):
    role = RoleFactory(name="Analyst")
    RoleApplication.objects.create(role=role, application=ApplicationFactory(name="Tableau"), access_level="user")
    user = scim.post("Users", user_body()).json()
    response = scim.patch(
        f"Groups/{role.pk}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    assert response.status_code == 200, response.content
    assert response.json()["members"][0]["value"] == user["id"]
    (run,) = runs(user["id"], ChecklistKind.MOVE)
    assert run.details["moves"][0]["add"]  # Tableau, the role's birthright
    assert scim.get(f"Users/{user['id']}").json()["groups"][0]["display"] == "Analyst"


def test_a_refused_move_rolls_the_whole_request_back(scim):
    user = scim.post("Users", user_body(title="Eng")).json()
    response = scim.patch(
        f"Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": user["id"]},  # their own manager
    )
    assert response.status_code == 400
    assert Employee.objects.get(pk=user["id"]).title == "Eng"
    assert runs(user["id"], ChecklistKind.MOVE) == []


def test_delete_starts_the_leaver_run_and_keeps_the_record(scim):
    user = scim.post("Users", user_body()).json()
    assert scim.delete(f"Users/{user['id']}").status_code == 204
    assert len(runs(user["id"], ChecklistKind.LEAVE)) == 1
    assert Employee.objects.filter(pk=user["id"]).exists()


def test_the_readme_one_liner_pushes_a_joiner(scim):
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    block = readme.split("<!-- scim-demo -->")[1].split("<!-- /scim-demo -->")[0]
    payload = json.loads(re.search(r"-d '(\{.*\})'", block).group(1))
    assert "curl -sS -X POST http://127.0.0.1:8000/scim/v2/Users" in block
    assert 'scim_connection_create --name "Demo IdP" --quiet' in block
    DepartmentFactory(name="Engineering", code="ENG")
    response = scim.post("Users", payload)
    assert response.status_code == 201, response.content
    employee = Employee.objects.get(work_email="new.joiner@helix.example")
    assert employee.department.code == "ENG"
    assert len(runs(employee.pk, ChecklistKind.JOIN)) == 1
