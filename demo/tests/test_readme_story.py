"""The README's demo promises, checked on a freshly loaded demo company.

The README is the source: the logins table (who holds what) and the numbered demo story between the
`<!-- demo-story -->` markers are parsed, and the story is walked step by step as a person would, through
the pages with the real demo passwords: `employee` requests, `manager` approves, `owner` approves, IT
marks the manual provisioning done, and `employee` sees the access with the last day they chose. When
the README and the demo data disagree (the employee already holds the application, a step waits on
someone else, a count in the table is wrong), this fails and says which.
"""

import datetime
import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.connectors.scim import forget_discovery
from accounts.models import AccessRequest, AccessRequestStatus, Application, Employee, EntitlementStatus
from assets.models import HELD_STATUSES
from demo.company import DEMO_PASSWORD, LOGINS
from demo.targets import DemoTargets
from offboarding.models import Task

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
NUMBERS = {"no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def login_rows() -> dict[str, str]:
    """The README's demo logins table: username → the "who" column."""
    section = readme().split("### Demo logins", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z]+)` \| (.+?) \|", section, flags=re.MULTILINE))


def story_steps() -> list[str]:
    """The numbered steps of the README's demo story, in order."""
    block = readme().split("<!-- demo-story -->", 1)[1].split("<!-- /demo-story -->", 1)[0]
    steps = re.findall(r"^(\d+)\. (.+)$", block, flags=re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)), "the story's steps are not numbered 1, 2, …"
    return [text for _, text in steps]


def signs_in(step: str) -> str:
    found = re.search(r"Sign in as `([a-z]+)`", step)
    assert found, f"a story step that does not say who signs in: {step!r}"
    assert found.group(1) in LOGINS, f"the README's story signs in as {found.group(1)!r}, not a demo login"
    return found.group(1)


def waits_for(step: str) -> str:
    found = re.search(r"waits for `([a-z]+)`", step)
    assert found, f"the step does not say whom the request waits for: {step!r}"
    return found.group(1)


def signed_in(username: str, step: str = "") -> Client:
    """A browser session of the demo login, signed in through the login page with the demo password.

    Staff then give the second factor the way the README's step says: the code `manage.py demo_code` prints.
    """
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": DEMO_PASSWORD})
    assert response.status_code == 302, f"{username} cannot sign in with the README's demo password"
    home = client.get(reverse("home"))
    if home.status_code == 302 and home["Location"].startswith(reverse("mfa:verify")):
        assert "`python manage.py demo_code`" in step, f"the README's step does not say how {username} gets a code"
        printed = io.StringIO()
        call_command("demo_code", stdout=printed)
        code = dict(line.split() for line in printed.getvalue().splitlines())[username]
        verified = client.post(reverse("mfa:verify"), {"token": code})
        assert verified.status_code == 302, f"{username}'s code from `demo_code` was refused"
    return client


def status_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def demo(db):
    call_command("seed_demo", "--quiet-logins", stdout=open("/dev/null", "w"))  # noqa: SIM115


@pytest.fixture
def demo_targets(demo):
    """The demo's target systems, as `make run` starts them (on free ports; the demo is pointed at them)."""
    forget_discovery()
    with DemoTargets(0, 0) as targets:
        yield targets
    forget_discovery()


def test_the_logins_table_says_what_the_demo_holds(demo):
    rows = login_rows()
    assert set(rows) == set(LOGINS), "the README's logins table and demo.company.LOGINS list other people"
    people = {name: Employee.objects.get(user__username=name) for name in ("manager", "owner", "employee")}

    reports = int(re.search(r"with (\d+) reports", rows["manager"]).group(1))
    assert people["manager"].reports.exclude(status="terminated").count() == reports

    owned = re.search(r"owner of (.+?), with", rows["owner"]).group(1)
    named = {name.strip() for name in re.split(r", | and ", owned)}
    assert set(people["owner"].owned_applications.values_list("name", flat=True)) == named

    employee = people["employee"]
    holds = re.search(
        r"holds (\d+) devices \((\w+) with terms not yet accepted\) and (\d+) applications", rows["employee"]
    )
    devices, without_terms, applications = int(holds.group(1)), NUMBERS[holds.group(2)], int(holds.group(3))
    held = employee.hardware.filter(status__in=HELD_STATUSES)
    assert held.count() == devices
    open_checkouts = employee.checkouts.filter(checked_in_at__isnull=True)
    assert open_checkouts.filter(terms_accepted_at__isnull=True).count() == without_terms
    assert employee.entitlements.filter(status=EntitlementStatus.ACTIVE).count() == applications
    if "one request waiting for `manager`" in rows["employee"]:
        waiting = AccessRequest.objects.filter(employee=employee, status=AccessRequestStatus.PENDING)
        assert waiting.count() == 1
        assert waiting.get().steps.get(status="pending").approver == people["manager"]


def test_the_readme_demo_story_can_be_walked(demo_targets, django_capture_on_commit_callbacks):
    steps = story_steps()
    assert len(steps) == 7, "the story below is walked in seven steps; update this test with the README"
    requester, first_approver, second_approver, it, requester_again, scim_requester, scim_approver = (
        signs_in(step) for step in steps
    )
    app_name = re.search(r"\*\*(.+?)\*\*", steps[0]).group(1)
    level = re.search(r"level `([a-z_]+)`", steps[0]).group(1)
    application = Application.objects.get(name=app_name)
    max_days = int(re.search(r"within (\d+) days", steps[0]).group(1))
    assert application.max_access_days == max_days
    last_day = timezone.localdate() + datetime.timedelta(days=30)

    # 1. The employee requests it.
    employee = signed_in(requester)
    page = employee.get(reverse("access:request"))
    offered = page.context["form"].fields["application"].queryset
    assert application in offered, f"{requester} cannot request {app_name}: they hold it or asked for it already"
    assert level in application.access_levels
    response = employee.post(
        reverse("access:request"),
        {
            "application": application.pk,
            "level": level,
            "justification": "On-call for the routing service.",
            "end_date": last_day.isoformat(),
        },
        follow=True,
    )
    request = AccessRequest.objects.get(
        employee__user__username=requester, application=application, status=AccessRequestStatus.PENDING
    )
    first = request.steps.get(order=1)
    assert first.approver.user.username == waits_for(steps[0]) == first_approver
    assert any("waits for" in m for m in status_messages(response))

    # 2. The manager approves.
    manager = signed_in(first_approver)
    assert f"request for {app_name}" in manager.get(reverse("access:approvals")).content.decode()
    assert manager.get(reverse("access:step_decide", args=[first.pk])).status_code == 200
    response = manager.post(reverse("access:step_decide", args=[first.pk]), {"decision": "approve", "comment": ""})
    assert response.status_code == 302
    second = request.steps.get(order=2)
    assert second.approver.user.username == waits_for(steps[1]) == second_approver

    # 3. The owner approves: the request is approved and handed to the connector (manual: a task for IT).
    owner = signed_in(second_approver)
    assert f"request for {app_name}" in owner.get(reverse("access:approvals")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(reverse("access:step_decide", args=[second.pk]), {"decision": "approve", "comment": ""})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == AccessRequestStatus.APPROVED
    assert request.entitlement is not None and request.entitlement.status != EntitlementStatus.ACTIVE

    # 4. IT finds the provisioning task in the admin and marks it done.
    title = re.search(r'open "(.+?)"', steps[3]).group(1)
    admin = signed_in(it, steps[3])
    listing = admin.get(reverse("admin:offboarding_task_changelist"), {"q": title})
    tasks = list(listing.context["cl"].result_list)
    assert len(tasks) == 1, f"the admin's task search for {title!r} found {len(tasks)} tasks"
    task = tasks[0]
    assert admin.get(reverse("admin:offboarding_task_change", args=[task.pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("admin:offboarding_task_complete", args=[task.pk]), {"apply": "1", "note": ""})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == "done"

    # 5. The employee sees the access, active, until the last day they chose.
    employee = signed_in(requester_again)
    page = employee.get(reverse("access:my_access"))
    rows = {e.application.name: e for e in page.context["entitlements"]}
    entitlement = rows[app_name]
    assert (entitlement.level, entitlement.status) == (level, EntitlementStatus.ACTIVE)
    assert re.search(r"level `([a-z_]+)`", steps[4]).group(1) == level
    html = page.content.decode()
    row = html.split(app_name, 1)[1].split("</tr>", 1)[0]
    assert f"{last_day:%-d %b %Y}" in row, f"'Until' does not show the chosen last day {last_day}: {row}"

    # 6. The employee asks for an application on the demo's SCIM service.
    app_name = re.search(r"\*\*(.+?)\*\*", steps[5]).group(1)
    level = re.search(r"level `([a-z_]+)`", steps[5]).group(1)
    application = Application.objects.get(name=app_name)
    assert application.connector == "scim", f"{app_name} is not on the demo's SCIM service"
    employee = signed_in(scim_requester)
    offered = employee.get(reverse("access:request")).context["form"].fields["application"].queryset
    assert application in offered, f"{scim_requester} cannot request {app_name}: they hold it or asked for it already"
    response = employee.post(
        reverse("access:request"),
        {"application": application.pk, "level": level, "justification": "Reviewing the onboarding designs."},
        follow=True,
    )
    request = AccessRequest.objects.get(
        employee__user__username=scim_requester, application=application, status=AccessRequestStatus.PENDING
    )
    step = request.steps.get(status="pending")
    assert step.approver.user.username == waits_for(steps[5]) == scim_approver
    assert request.steps.count() == 1, f"{app_name} needs more than the manager's approval"

    # 7. The manager approves: the account is created on the SCIM service at once, no task for IT.
    manager = signed_in(scim_approver)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(reverse("access:step_decide", args=[step.pk]), {"decision": "approve", "comment": ""})
    assert response.status_code == 302
    tenant = re.search(r"/([a-z0-9]+)/v2`", steps[6]).group(1)
    group = re.search(r"in group `(.+?)`", steps[6]).group(1)
    email = Employee.objects.get(user__username=scim_requester).work_email
    account = demo_targets.scim.user(email, tenant=tenant)
    assert account is not None and account["active"] is True, f"no active account for {email} on {tenant}"
    assert account["id"] in demo_targets.scim.members(group, tenant=tenant)
    request.refresh_from_db()
    assert request.entitlement.status == EntitlementStatus.ACTIVE
    provisioning = Task.objects.filter(params__entitlement=request.entitlement_id)
    assert list(provisioning.values_list("assignee_type", "status")) == [("system", "done")], "a task for IT"
    page = signed_in(scim_requester).get(reverse("access:my_access"))
    rows = {e.application.name: e for e in page.context["entitlements"]}
    assert (rows[app_name].level, rows[app_name].status) == (level, EntitlementStatus.ACTIVE)
