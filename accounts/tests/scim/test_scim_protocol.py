"""Portal's SCIM server as Okta's Runscope suite and Entra ID's SCIM validator exercise it, plus the bad
paths: every refusal is a SCIM error body (status as a string), never a 5xx, and writes nothing."""

import json

import pytest
from django.test import override_settings

from accounts.models import Employee, ScimConnection
from accounts.scim.services import scim_connection_revoke
from accounts.tests.factories import EmployeeFactory
from accounts.tests.scim.conftest import ENTERPRISE, USER, user_body
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def created(scim, **kw):
    response = scim.post("Users", user_body(**kw))
    assert response.status_code == 201, response.content
    return response.json()


def assert_scim_error(response, status, scim_type=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)  # a string, as Okta and Entra read it
    assert body.get("detail")
    if scim_type:
        assert body["scimType"] == scim_type
    return body


# --- Okta Runscope: create, read, filter, page, duplicate, 404 ------------------------------


def test_create_then_read_back_what_was_pushed(scim, connection):
    user = created(scim, externalId="00u1abc", title="Engineer", active=True, nickName="Addie")
    employee = Employee.objects.get(pk=user["id"])
    assert (employee.work_email, employee.first_name, employee.external_id) == ("ada@example.com", "Ada", "00u1abc")
    assert employee.history.first().history_user == connection.service_user
    event = AuditEvent.objects.get(action=AuditEvent.Action.EMPLOYEE_CREATED, target_id=str(employee.pk))
    assert event.actor_repr == connection.service_user.username == "scim-okta"
    got = scim.get(f"Users/{user['id']}").json()
    assert got["userName"] == "ada@example.com" and got["active"] is True and got["nickName"] == "Addie"
    assert got[ENTERPRISE]["employeeNumber"] == "S1001"


def test_username_is_unique_whatever_the_case_409(scim):
    created(scim)
    before = Employee.objects.count()
    body = assert_scim_error(scim.post("Users", user_body(email="ADA@Example.com", number="S2")), 409, "uniqueness")
    assert "ada@example.com" in body["detail"]
    assert Employee.objects.count() == before


def test_unknown_user_is_404_with_a_scim_body(scim):
    assert_scim_error(scim.get("Users/999999"), 404)
    assert_scim_error(scim.get("Users/not-a-number"), 404)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('userName eq "ADA@EXAMPLE.COM"', {"S1"}),
        ('userName ne "ada@example.com"', {"S2", "S3"}),
        ('name.familyName co "OVE"', {"S1"}),
        ('userName sw "gr"', {"S2"}),
        ('userName ew "@other.org"', {"S3"}),
        ("title pr", {"S1", "S2"}),
        ('title eq "Boss" or title eq "Eng"', {"S1", "S2"}),
        ('title pr and not (title eq "Boss")', {"S1"}),
        ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt "S1"', {"S2", "S3"}),
        ('name.givenName le "b"', {"S1", "S3"}),
        ('name.givenName gt "ALAN"', {"S2"}),
        ('externalId eq "x-3"', {"S3"}),
        ("active eq true", {"S1", "S2", "S3"}),
    ],
)
def test_filters(scim, expression, expected):
    created(scim, email="ada@example.com", number="S1", title="Eng")
    created(scim, email="grace@example.com", number="S2", given="Grace", family="Hopper", title="Boss")
    created(scim, email="alan@other.org", number="S3", given="Alan", family="Turing", externalId="x-3")
    response = scim.get("Users", filter=expression)
    assert response.status_code == 200, response.content
    assert {r[ENTERPRISE]["employeeNumber"] for r in response.json()["Resources"]} == expected


def test_start_index_and_count_are_echoed_and_sorting_applies(scim):
    for n, name in enumerate(["Cleo", "Abe", "Bea"]):
        created(scim, email=f"{name.lower()}@example.com", number=f"S{n}", given=name)
    body = scim.get("Users", startIndex="2", count="1", sortBy="name.givenName").json()
    assert (body["startIndex"], body["itemsPerPage"], body["totalResults"]) == (2, 1, 3)
    assert [r["name"]["givenName"] for r in body["Resources"]] == ["Bea"]


# --- Entra ID validator: PATCH as Entra sends it ------------------------------------------


def test_entra_patch_capitalised_ops_string_booleans_and_path_filters(scim):
    user = created(scim)
    response = scim.patch(
        f"Users/{user['id']}",
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ada@example.com"},
        {"op": "Replace", "path": "title", "value": "Analyst"},
        {"op": "Replace", "path": "active", "value": "True"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["emails"] == [{"type": "work", "value": "ada@example.com"}] and body["title"] == "Analyst"
    response = scim.patch(
        f"Users/{user['id']}", {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a2@example.com"}
    )
    assert response.json()["emails"] == [{"type": "work", "value": "a2@example.com"}]


def test_bare_string_manager_and_clearing_with_empty_or_null(scim):
    boss = created(scim, email="boss@example.com", number="B1")
    user = created(scim, title="Eng", nickName="Addie")
    path = f"{ENTERPRISE}:manager"
    body = scim.patch(f"Users/{user['id']}", {"op": "Replace", "path": path, "value": boss["id"]}).json()
    assert body[ENTERPRISE]["manager"]["value"] == boss["id"]
    assert Employee.objects.get(pk=user["id"]).manager_id == int(boss["id"])
    body = scim.patch(
        f"Users/{user['id']}",
        {"op": "Replace", "path": path, "value": ""},
        {"op": "Replace", "path": "title", "value": None},
        {"op": "replace", "path": "nickName", "value": ""},
    ).json()
    assert "manager" not in body[ENTERPRISE] and "title" not in body and "nickName" not in body
    assert Employee.objects.get(pk=user["id"]).manager_id is None


def test_if_match_with_a_stale_version_is_412_and_writes_nothing(scim):
    user = created(scim, title="Eng")
    stale = user["meta"]["version"]
    assert scim.patch(f"Users/{user['id']}", {"op": "replace", "path": "title", "value": "A"}).status_code == 200
    response = scim.patch(
        f"Users/{user['id']}", {"op": "replace", "path": "title", "value": "B"}, headers={"HTTP_IF_MATCH": stale}
    )
    assert_scim_error(response, 412)
    assert Employee.objects.get(pk=user["id"]).title == "A"


def test_put_replaces_the_user(scim):
    user = created(scim, title="Eng")
    body = user_body(given="Augusta", active=True)
    response = scim.put(f"Users/{user['id']}", body)
    assert response.status_code == 200, response.content
    employee = Employee.objects.get(pk=user["id"])
    assert (employee.first_name, employee.title) == ("Augusta", "")


# --- Bad input: a SCIM error, nothing written ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "scim_type"),
    [
        ("{not json", 400, "invalidSyntax"),
        (json.dumps({"schemas": [USER], "userName": "x@example.com", "shoeSize": 44}), 400, None),
        (json.dumps({"schemas": [USER], "userName": 7, "name": "Ada"}), 400, None),
        ("[]", 400, None),
    ],
)
def test_malformed_unknown_and_wrong_types_are_refused(scim, raw, status, scim_type):
    before = Employee.objects.count()
    assert_scim_error(scim.call("POST", "Users", raw=raw), status, scim_type)
    assert Employee.objects.count() == before


def test_userName_that_is_no_email_without_a_username_domain_is_refused(scim):
    before = Employee.objects.count()
    assert_scim_error(scim.post("Users", user_body(email="ada")), 400)
    assert Employee.objects.count() == before


def test_unparsable_filter_and_unfilterable_attribute(scim):
    assert_scim_error(scim.get("Users", filter="userName eq"), 400, "invalidFilter")
    body = assert_scim_error(scim.get("Users", filter='emails.value eq "a@b.c"'), 400, "invalidFilter")
    assert "userName" in body["detail"] or "username" in body["detail"]


def test_patch_on_a_path_that_does_not_exist_writes_nothing(scim):
    user = created(scim, title="Eng")
    response = scim.patch(
        f"Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": "favouriteColour", "value": "blue"},
    )
    assert_scim_error(response, 400, "invalidPath")
    assert Employee.objects.get(pk=user["id"]).title == "Eng"


def test_an_unknown_manager_writes_nothing(scim):
    user = created(scim, title="Eng")
    response = scim.patch(
        f"Users/{user['id']}",
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "424242"},
    )
    assert_scim_error(response, 400)
    assert Employee.objects.get(pk=user["id"]).title == "Eng"


@override_settings(SCIM={"MAX_BODY_BYTES": 2000, "REQUESTS_PER_MINUTE": 1000, "REFUSED_PER_MINUTE": 30})
def test_an_oversized_body_is_413(scim):
    before = Employee.objects.count()
    assert_scim_error(scim.post("Users", user_body(title="x" * 3000)), 413)
    assert Employee.objects.count() == before


@override_settings(SCIM={"MAX_BODY_BYTES": 20000, "REQUESTS_PER_MINUTE": 3, "REFUSED_PER_MINUTE": 30})
def test_a_connection_over_its_rate_is_429(scim):
    from django.core.cache import cache

    cache.clear()
    statuses = [scim.get("Users").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# --- Tokens ---------------------------------------------------------------------------------


def test_missing_bad_and_revoked_tokens_are_401_and_bad_ones_audited(client, scim, connection):
    assert_scim_error(client.get("/scim/v2/Users"), 401)
    assert_scim_error(scim.get("Users", token=f"scim_{connection.token_prefix}_" + "x" * 43), 401)
    assert_scim_error(scim.get("Users", token="scim_00000000_" + "y" * 43), 401)
    scim_connection_revoke(connection=connection, acting_user=None)
    body = assert_scim_error(scim.get("Users"), 401)
    assert "revoked" in body["detail"]
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.SCIM_TOKEN_REFUSED)
    assert sorted(e.detail["reason"] for e in refused) == ["revoked", "unknown", "unknown"]
    assert all("x" * 10 not in str(e.detail) for e in refused)  # the secret never lands in the log


def test_only_the_hash_and_prefix_of_the_token_are_stored(connection_and_token):
    connection, token = connection_and_token
    stored = ScimConnection.objects.filter(pk=connection.pk).values().get()
    assert token not in str(stored) and token.split("_")[2] not in str(stored)
    assert token.startswith(f"scim_{connection.token_prefix}_")


def test_delete_deactivates_and_hides_but_never_erases(scim):
    user = created(scim)
    assert scim.delete(f"Users/{user['id']}").status_code == 204
    assert_scim_error(scim.get(f"Users/{user['id']}"), 404)
    employee = Employee.objects.get(pk=user["id"])  # still there
    assert employee.scim_removed_at is not None and employee.end_date is not None


def test_an_existing_employee_is_found_by_username_and_taken_over(scim):
    EmployeeFactory(work_email="kim@example.com", employee_number="E77")
    found = scim.get("Users", filter='userName eq "kim@example.com"').json()["Resources"]
    assert [r[ENTERPRISE]["employeeNumber"] for r in found] == ["E77"]


def test_discovery_endpoints(scim):
    config = scim.get("ServiceProviderConfig").json()
    assert config["patch"]["supported"] and config["etag"]["supported"] and not config["bulk"]["supported"]
    types = {r["name"] for r in scim.get("ResourceTypes").json()["Resources"]}
    assert types == {"User", "Group"}
    schemas = {s["id"] for s in scim.get("Schemas").json()["Resources"]}
    assert ENTERPRISE in schemas and USER in schemas


def test_the_retention_purge_forgets_the_emails_an_identity_provider_sent(scim):
    from accounts.services.employees import employee_anonymise, employee_set_status

    user = created(scim, emails=[{"value": "ada.home@mail.example", "type": "home"}])
    employee = Employee.objects.get(pk=user["id"])
    employee_set_status(employee=employee, status="terminated", acting_user=None)
    employee_anonymise(employee=employee, acting_user=None)
    assert Employee.objects.get(pk=employee.pk).scim_emails == []
    assert "ada.home" not in str(list(Employee.history.filter(id=employee.pk).values_list("scim_emails", flat=True)))
