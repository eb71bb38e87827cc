"""Permission matrix of self-service: every URL of `access`, `assets` and `offboarding`, each method it
answers, for each of nine audiences; one test per cell, e.g. `access:step_decide[GET]-other_manager`.

Each cell asserts the exact status (and the login redirect for an anonymous visitor) and, for a POST,
that the row it aims at changed for the audience allowed to act and is unchanged for everyone else.
The objects belong to `cast.employee` (or to the audience that decides them): see `world`.
A URL added to one of the three URL confs without rows here fails `test_every_self_service_url_is_in_the_matrix`.

One file on purpose (~670 lines): the world, the rows and the completeness check are one table, read
together; split, a row could drift from the world it is checked against.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core import signing
from django.shortcuts import resolve_url
from django.urls import get_resolver, reverse
from django.utils import timezone

from accounts.models import AccessRequest, AccessRequestStatus, ApprovalDelegation, ApprovalStep, ApprovalStepStatus
from accounts.services import access_requests, delegations
from assets.models import AssetCheckout
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.engine import run_start, task_add
from offboarding.flows import returns
from offboarding.models import ChangeRequest, HardwareReturn, ReturnStatus, Task, TaskStatus

pytestmark = pytest.mark.django_db

AUDIENCES = (
    "anonymous",
    "employee",
    "other_employee",
    "manager",
    "other_manager",
    "owner",
    "other_owner",
    "helpdesk",
    "auditor",
)
PEOPLE = tuple(a for a in AUDIENCES if a not in ("anonymous", "helpdesk", "auditor"))
STAFF = ("helpdesk", "auditor")  # logins without an employee record
NAMESPACES = ("access", "assets", "offboarding")
LOGIN = "login"  # expected: 302 to the login page with ?next=<this URL>


# --- The objects every cell starts from --------------------------------------------------------


class World:
    """One object of each kind, owned by `cast.employee` unless said otherwise, each made through its
    service the first time a cell needs it (so a cell pays only for what it uses).

    - `req`: employee's pending request for GitHub (manager, then owner); `step_mgr` (pending on the
      manager) and `step_waiting` (the owner's step, waiting for the manager's).
    - `delegation`: the manager lets the employee decide for them this week. It comes with `step_mgr`:
      the employee, as a delegate in force, may see the step of their own request but never decide it.
    - `owner_step`: teammate's request for Figma, its one step pending on the owner.
    - `checkout`: employee's open check-out of a laptop, terms not accepted.
    - `hw_return`: an open return of employee's phone; `token`, their return link; `forged`, a link
      for them signed with the wrong key.
    - `task`: a manual task assigned to employee in their join run.
    """

    def __init__(self, cast):
        self.cast = cast
        self.today = timezone.localdate()

    @cached_property
    def _access(self):
        """The request and then the delegation (so the delegate is the requester of a pending step)."""
        cast = self.cast
        req = access_requests.access_request_create(
            employee=cast.employee,
            application=cast.app,
            level="read",
            justification="Code review.",
            acting_user=cast.employee.user,
        )
        delegation = delegations.delegation_create(
            delegator=cast.manager,
            delegate=cast.employee,
            starts_on=self.today,
            ends_on=self.today + datetime.timedelta(days=7),
            reason="Holiday",
            acting_user=cast.manager.user,
        )
        step_mgr, step_waiting = req.steps.order_by("order")
        assert (step_mgr.approver, step_mgr.status) == (cast.manager, ApprovalStepStatus.PENDING)
        assert (step_waiting.approver, step_waiting.status) == (cast.owner, ApprovalStepStatus.WAITING)
        return SimpleNamespace(req=req, delegation=delegation, step_mgr=step_mgr, step_waiting=step_waiting)

    @property
    def req(self):
        return self._access.req

    @property
    def delegation(self):
        return self._access.delegation

    @property
    def step_mgr(self):
        return self._access.step_mgr

    @property
    def step_waiting(self):
        return self._access.step_waiting

    @cached_property
    def owner_step(self):
        cast = self.cast
        request = access_requests.access_request_create(
            employee=cast.teammate,
            application=cast.owner_app,
            level="user",
            justification="Design work.",
            acting_user=cast.teammate.user,
        )
        step = request.steps.get()
        assert (step.approver, step.status) == (cast.owner, ApprovalStepStatus.PENDING)
        return step

    @cached_property
    def checkout(self):
        laptop = HardwareAssetFactory(asset_tag="LT-MATRIX-1")
        checkout = asset_check_out(asset=laptop, employee=self.cast.employee, acting_user=None, terms_accepted=False)
        assert checkout.terms_accepted_at is None
        return checkout

    @cached_property
    def hw_return(self):
        phone = HardwareAssetFactory(asset_tag="PH-MATRIX-2")
        asset_check_out(asset=phone, employee=self.cast.employee, acting_user=None, terms_accepted=True)
        item = returns.hardware_return_request(asset=phone, acting_user=None)
        assert (item.employee, item.status) == (self.cast.employee, ReturnStatus.OPEN)
        return item

    @cached_property
    def token(self):
        return returns.return_link_token(self.cast.employee)

    @cached_property
    def forged(self):
        return signing.dumps({"e": self.cast.employee.pk}, salt="not-the-return-link-salt", compress=True)

    def populate(self) -> list:
        """Make every object (for the list pages); no URL arguments."""
        for name in ("req", "owner_step", "checkout", "hw_return", "task", "review_item"):
            getattr(self, name)
        return []

    @cached_property
    def review_item(self):
        """The employee's GitHub access in a launched access review: the manager reviews it."""
        from accounts.models import AccessReview
        from accounts.services import reviews
        from accounts.tests.factories import EntitlementFactory

        EntitlementFactory(employee=self.cast.employee, application=self.cast.app)
        campaign = AccessReview(
            name="Matrix review", starts_on=self.today, due_on=self.today + datetime.timedelta(days=7)
        )
        campaign = reviews.review_campaign_save(campaign=campaign, acting_user=None)
        campaign.applications.set([self.cast.app])
        reviews.review_campaign_launch(campaign=campaign, acting_user=None)
        item = campaign.items.get()
        assert (item.employee, item.reviewer) == (self.cast.employee, self.cast.manager)
        return item

    @cached_property
    def task(self):
        run = run_start(employee=self.cast.employee, kind="join", event_date=self.today, acting_user=None)
        task = task_add(
            run=run, key="welcome", title="Read the handbook", assignee_type="employee", assignee=self.cast.employee
        )
        assert (task.status, task.assignee) == (TaskStatus.PENDING, self.cast.employee)
        return task


@pytest.fixture
def world(cast, mailoutbox):
    return World(cast)


# --- Snapshots of the rows a POST aims at -------------------------------------------------------


def _request_state(request_id: int) -> tuple:
    return (
        AccessRequest.objects.filter(pk=request_id).values_list("status", "decided_at").get(),
        tuple(
            ApprovalStep.objects.filter(request_id=request_id)
            .order_by("order")
            .values_list("status", "decided_by_id", "decided_at", "comment")
        ),
    )


def _return_state(w) -> tuple:
    return (
        HardwareReturn.objects.filter(pk=w.hw_return.pk)
        .values_list("status", "method", "carrier", "tracking_number", "shipped_at")
        .get()
    )


def _review_state(w) -> tuple:
    from accounts.models import ReviewItem

    return ReviewItem.objects.filter(pk=w.review_item.pk).values_list("state", "decided_by_id", "decision").get()


def _all_requests(w) -> tuple:
    return tuple(AccessRequest.objects.order_by("pk").values_list("pk", "employee_id", "application_id", "status"))


def _all_delegations(w) -> tuple:
    return tuple(ApprovalDelegation.objects.order_by("pk").values_list("pk", "delegator_id", "cancelled_at"))


def _change_requests(w) -> tuple:
    return tuple(ChangeRequest.objects.order_by("pk").values_list("pk", "employee_id", "kind", "status"))


# --- POST bodies ---------------------------------------------------------------------------------


def _ship_data(w) -> dict:
    prefix = f"r{w.hw_return.pk}"
    return {f"{prefix}-method": "courier", f"{prefix}-carrier": "DHL", f"{prefix}-tracking_number": "JD0142"}


def _approve(w) -> dict:
    return {"decision": "approve", "comment": ""}


# --- The table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One URL with one method (and one variant of its arguments), and what each audience gets."""

    name: str
    method: str
    args: Callable
    expect: dict
    data: Callable | None = None
    state: Callable | None = None  # snapshot of what the request could change
    acts: frozenset = frozenset()  # audiences whose request must change `state`
    label: str = ""
    no_record: bool = False  # staff logins without an employee record get the "not linked" page
    xfail: dict = field(default_factory=dict)  # audience -> reason (only for a cell that truly fails)

    @property
    def key(self) -> str:
        return f"{self.name}[{self.method}{',' + self.label if self.label else ''}]"


def cells(default, *, anonymous=LOGIN, **overrides) -> dict:
    """Expected status per audience: `default` for everyone signed in, `anonymous` for the visitor."""
    unknown = set(overrides) - set(AUDIENCES)
    assert not unknown, unknown
    return {"anonymous": anonymous, **dict.fromkeys(AUDIENCES[1:], default), **overrides}


def everyone(status) -> dict:
    return cells(status, anonymous=status)


LIST = lambda w: w.populate()  # noqa: E731  (a list page, rendered with every object in place)
ALL_PEOPLE = frozenset(PEOPLE)

ROWS = [
    # -- access ------------------------------------------------------------------------------------
    Row("access:my_access", "GET", LIST, cells(200), no_record=True),
    Row("access:request", "GET", LIST, cells(200), no_record=True),
    Row(
        "access:request",
        "POST",
        LIST,
        cells(302, helpdesk=200, auditor=200),
        data=lambda w: {"application": w.cast.other_app.pk, "level": "user", "justification": "Month end."},
        state=_all_requests,
        acts=ALL_PEOPLE,
        no_record=True,
    ),
    Row("access:my_requests", "GET", LIST, cells(200), no_record=True),
    Row("access:request_detail", "GET", lambda w: [w.req.pk], cells(404, employee=200)),
    Row("access:request_cancel", "GET", lambda w: [w.req.pk], cells(405), state=lambda w: _request_state(w.req.pk)),
    Row(
        "access:request_cancel",
        "POST",
        lambda w: [w.req.pk],
        cells(404, employee=302),
        state=lambda w: _request_state(w.req.pk),
        acts=frozenset({"employee"}),
    ),
    Row("access:approvals", "GET", LIST, cells(200), no_record=True),
    # The manager's pending step: the manager decides. The employee is the manager's delegate but the
    # requester: a delegate never sees nor decides their own request (404, like anyone else).
    Row(
        "access:step_decide",
        "GET",
        lambda w: [w.step_mgr.pk],
        cells(404, manager=200),
        state=lambda w: _request_state(w.req.pk),
    ),
    Row(
        "access:step_decide",
        "POST",
        lambda w: [w.step_mgr.pk],
        cells(404, manager=302),
        data=_approve,
        state=lambda w: _request_state(w.req.pk),
        acts=frozenset({"manager"}),
    ),
    # The owner's step of the same request, still waiting for the manager: not the owner's to see
    # before their turn (the manager vets the request first), nor anyone else's.
    Row(
        "access:step_decide",
        "GET",
        lambda w: [w.step_waiting.pk],
        cells(404),
        label="waiting",
        state=lambda w: _request_state(w.req.pk),
    ),
    Row(
        "access:step_decide",
        "POST",
        lambda w: [w.step_waiting.pk],
        cells(404),
        data=_approve,
        label="waiting",
        state=lambda w: _request_state(w.req.pk),
    ),
    Row(
        "access:step_decide",
        "GET",
        lambda w: [w.owner_step.pk],
        cells(404, owner=200),
        label="owner",
        state=lambda w: _request_state(w.owner_step.request_id),
    ),
    Row(
        "access:step_decide",
        "POST",
        lambda w: [w.owner_step.pk],
        cells(404, owner=302),
        data=_approve,
        label="owner",
        state=lambda w: _request_state(w.owner_step.request_id),
        acts=frozenset({"owner"}),
    ),
    Row("access:delegations", "GET", LIST, cells(200), no_record=True),
    Row(
        "access:delegations",
        "POST",
        LIST,
        cells(302, helpdesk=200, auditor=200),
        data=lambda w: {
            "delegate": "teammate@example.com",
            "starts_on": (w.today + datetime.timedelta(days=30)).isoformat(),
            "ends_on": (w.today + datetime.timedelta(days=37)).isoformat(),
            "reason": "Conference",
        },
        state=_all_delegations,
        acts=ALL_PEOPLE,
        no_record=True,
    ),
    Row("access:delegation_cancel", "GET", lambda w: [w.delegation.pk], cells(405), state=_all_delegations),
    # Only the delegator cancels; the delegate (employee) gets 404 like everyone else.
    Row(
        "access:delegation_cancel",
        "POST",
        lambda w: [w.delegation.pk],
        cells(404, manager=302),
        state=_all_delegations,
        acts=frozenset({"manager"}),
    ),
    Row("access:owned_applications", "GET", LIST, cells(200), no_record=True),
    Row("access:owned_application", "GET", lambda w: [w.cast.app.pk], cells(404, owner=200)),
    Row("access:reviews", "GET", LIST, cells(200), no_record=True),
    # The employee's item: the manager reviews it; the holder never reviews their own access.
    Row("access:review_item", "GET", lambda w: [w.review_item.pk], cells(404, manager=200), state=_review_state),
    Row(
        "access:review_item",
        "POST",
        lambda w: [w.review_item.pk],
        cells(404, manager=302),
        data=lambda w: {"decision": "keep", "comment": "Still needed."},
        state=_review_state,
        acts=frozenset({"manager"}),
    ),
    Row("access:reviews_bulk", "GET", LIST, cells(405), state=_review_state),
    # Bulk decisions act only on the poster's own items: ids of others' are ignored (back to the list).
    Row(
        "access:reviews_bulk",
        "POST",
        LIST,
        cells(302, helpdesk=200, auditor=200),
        data=lambda w: {"decision": "keep", "scope": "selected", "items": [w.review_item.pk]},
        state=_review_state,
        acts=frozenset({"manager"}),
        no_record=True,
    ),
    # -- assets ------------------------------------------------------------------------------------
    Row("assets:my_hardware", "GET", LIST, cells(200), no_record=True),
    Row(
        "assets:accept_terms",
        "GET",
        lambda w: [w.checkout.pk],
        cells(405),
        state=lambda w: AssetCheckout.objects.filter(pk=w.checkout.pk).values_list("terms_accepted_at").get(),
    ),
    Row(
        "assets:accept_terms",
        "POST",
        lambda w: [w.checkout.pk],
        cells(404, employee=302),
        state=lambda w: AssetCheckout.objects.filter(pk=w.checkout.pk).values_list("terms_accepted_at").get(),
        acts=frozenset({"employee"}),
    ),
    # -- offboarding -------------------------------------------------------------------------------
    Row("offboarding:my_tasks", "GET", LIST, cells(200), no_record=True),
    Row(
        "offboarding:task_done",
        "GET",
        lambda w: [w.task.pk],
        cells(405),
        state=lambda w: Task.objects.filter(pk=w.task.pk).values_list("status", "completed_by_id").get(),
    ),
    Row(
        "offboarding:task_done",
        "POST",
        lambda w: [w.task.pk],
        cells(404, employee=302),
        data=lambda w: {"note": "Read it."},
        state=lambda w: Task.objects.filter(pk=w.task.pk).values_list("status", "completed_by_id").get(),
        acts=frozenset({"employee"}),
    ),
    Row("offboarding:my_returns", "GET", LIST, cells(200), no_record=True),
    Row("offboarding:return_ship", "GET", lambda w: [w.hw_return.pk], cells(405), state=_return_state),
    Row(
        "offboarding:return_ship",
        "POST",
        lambda w: [w.hw_return.pk],
        cells(404, employee=302),
        data=_ship_data,
        state=_return_state,
        acts=frozenset({"employee"}),
    ),
    # The return link needs no login: it is a bearer link to the employee's returns, whoever holds it.
    Row("offboarding:return_link", "GET", lambda w: [w.token], everyone(200)),
    Row("offboarding:return_link", "GET", lambda w: [w.forged], everyone(404), label="forged"),
    Row("offboarding:return_link_ship", "GET", lambda w: [w.token, w.hw_return.pk], everyone(405), state=_return_state),
    Row(
        "offboarding:return_link_ship",
        "POST",
        lambda w: [w.token, w.hw_return.pk],
        everyone(302),
        data=_ship_data,
        state=_return_state,
        acts=frozenset(AUDIENCES),
    ),
    Row(
        "offboarding:return_link_ship",
        "POST",
        lambda w: [w.forged, w.hw_return.pk],
        everyone(404),
        data=_ship_data,
        label="forged",
        state=_return_state,
    ),
    Row("offboarding:team", "GET", LIST, cells(200), no_record=True),
    Row("offboarding:team_member", "GET", lambda w: [w.cast.employee.pk], cells(404, manager=200)),
    Row(
        "offboarding:change_request",
        "GET",
        lambda w: [w.cast.employee.pk, "leave"],
        cells(404, manager=200),
        label="leave",
    ),
    Row(
        "offboarding:change_request",
        "POST",
        lambda w: [w.cast.employee.pk, "leave"],
        cells(404, manager=302),
        data=lambda w: {
            "effective_date": (w.today + datetime.timedelta(days=14)).isoformat(),
            "reason": "Resigned.",
        },
        label="leave",
        state=_change_requests,
        acts=frozenset({"manager"}),
    ),
    Row(
        "offboarding:change_request",
        "GET",
        lambda w: [w.cast.employee.pk, "move"],
        cells(404, manager=200),
        label="move",
    ),
    Row(
        "offboarding:change_request",
        "POST",
        lambda w: [w.cast.employee.pk, "move"],
        cells(404, manager=302),
        data=lambda w: {
            "new_manager": "other-manager@example.com",
            "effective_date": (w.today + datetime.timedelta(days=7)).isoformat(),
            "reason": "Moves to Finance.",
        },
        label="move",
        state=_change_requests,
        acts=frozenset({"manager"}),
    ),
    Row(
        "offboarding:change_request",
        "GET",
        lambda w: [w.cast.employee.pk, "promote"],
        cells(404),
        label="unknown-kind",
    ),
]


def _cells():
    for row in ROWS:
        assert set(row.expect) == set(AUDIENCES), f"{row.key} must give every audience a status"
        assert row.acts <= set(AUDIENCES), row.key
        for audience in AUDIENCES:
            marks = []
            if audience in row.xfail:
                marks.append(pytest.mark.xfail(strict=True, reason=row.xfail[audience]))
            yield pytest.param(row, audience, id=f"{row.key}-{audience}", marks=marks)


CELLS = list(_cells())


@pytest.mark.parametrize(("row", "audience"), CELLS)
def test_permission_cell(client, world, row, audience):
    if audience != "anonymous":
        client.force_login(world.cast.users[audience])
    url = reverse(row.name, args=row.args(world))
    before = row.state(world) if row.state else None

    data = row.data(world) if row.data else {}
    response = client.get(url) if row.method == "GET" else client.post(url, data)

    expected = row.expect[audience]
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"] == f"{resolve_url(settings.LOGIN_URL)}?next={url}"
    else:
        assert response.status_code == expected, f"{row.key} as {audience}"
    if row.no_record and audience in STAFF:
        assert "portal/no_record.html" in [t.name for t in response.templates]
    if row.state is not None:
        after = row.state(world)
        if audience in row.acts:
            assert after != before, f"{row.key} as {audience} should have changed {before}"
        else:
            assert after == before, f"{row.key} as {audience} changed {before} into {after}"


def test_every_self_service_url_is_in_the_matrix():
    resolver = get_resolver()
    names = set()
    for namespace in NAMESPACES:
        _prefix, sub = resolver.namespace_dict[namespace]
        names |= {f"{namespace}:{pattern.name}" for pattern in sub.url_patterns}
    covered = {row.name for row in ROWS}
    assert names - covered == set(), "self-service URLs without rows in the permission matrix"
    assert covered - names == set(), "matrix rows for URLs that no longer exist"


# --- What the pages show: a link shows its employee's returns only -------------------------------


def test_return_link_shows_only_that_employees_returns(client, world):
    cast = world.cast
    assert world.hw_return.asset.asset_tag == "PH-MATRIX-2"
    other = HardwareAssetFactory(asset_tag="SECRET-OTHER")
    asset_check_out(asset=other, employee=cast.other_employee, acting_user=None, terms_accepted=True)
    returns.hardware_return_request(asset=other, acting_user=None)

    page = client.get(reverse("offboarding:return_link", args=[world.token])).content.decode()

    assert "PH-MATRIX-2" in page
    assert "SECRET-OTHER" not in page


def test_a_decided_step_is_shown_to_its_decider_and_cannot_be_decided_again(client, world):
    cast = world.cast
    client.force_login(cast.manager.user)
    url = reverse("access:step_decide", args=[world.step_mgr.pk])
    assert client.post(url, _approve(world)).status_code == 302
    before = _request_state(world.req.pk)

    response = client.post(url, {"decision": "reject", "comment": "Changed my mind."})

    assert response.status_code == 200
    assert "cannot be decided again" in response.content.decode()
    assert _request_state(world.req.pk) == before


# --- Tampered ids and form fields ---------------------------------------------------------------


def test_decide_form_posted_by_the_wrong_manager_is_404(client, world):
    client.force_login(world.cast.other_manager.user)
    before = _request_state(world.req.pk)

    response = client.post(reverse("access:step_decide", args=[world.step_mgr.pk]), _approve(world))

    assert response.status_code == 404
    assert _request_state(world.req.pk) == before


def test_cancelling_someone_elses_request_is_404(client, world):
    cast = world.cast
    theirs = access_requests.access_request_create(
        employee=cast.other_employee,
        application=cast.owner_app,
        level="user",
        justification="Mockups.",
        acting_user=cast.other_employee.user,
    )
    before = _request_state(theirs.pk)
    client.force_login(cast.employee.user)

    response = client.post(reverse("access:request_cancel", args=[theirs.pk]))

    assert response.status_code == 404
    assert _request_state(theirs.pk) == before
    assert AccessRequest.objects.get(pk=theirs.pk).status == AccessRequestStatus.PENDING


def test_accepting_terms_of_someone_elses_checkout_is_404(client, world):
    cast = world.cast
    asset = HardwareAssetFactory(asset_tag="LT-OTHER")
    theirs = asset_check_out(asset=asset, employee=cast.other_employee, acting_user=None, terms_accepted=False)
    client.force_login(cast.employee.user)

    response = client.post(reverse("assets:accept_terms", args=[theirs.pk]))

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.terms_accepted_at is None


@pytest.fixture
def their_return(world):
    asset = HardwareAssetFactory(asset_tag="LT-THEIRS")
    asset_check_out(asset=asset, employee=world.cast.other_employee, acting_user=None, terms_accepted=True)
    return returns.hardware_return_request(asset=asset, acting_user=None)


def _ship_for(item) -> dict:
    return {f"r{item.pk}-method": "courier", f"r{item.pk}-carrier": "DHL", f"r{item.pk}-tracking_number": "JD9"}


def test_shipping_someone_elses_return_is_404(client, world, their_return):
    client.force_login(world.cast.employee.user)

    response = client.post(reverse("offboarding:return_ship", args=[their_return.pk]), _ship_for(their_return))

    assert response.status_code == 404
    their_return.refresh_from_db()
    assert their_return.status == ReturnStatus.OPEN and their_return.tracking_number == ""


def test_one_employees_return_link_cannot_ship_another_employees_return(client, world, their_return):
    url = reverse("offboarding:return_link_ship", args=[world.token, their_return.pk])

    response = client.post(url, _ship_for(their_return))

    assert response.status_code == 404
    their_return.refresh_from_db()
    assert their_return.status == ReturnStatus.OPEN and their_return.tracking_number == ""


@pytest.mark.parametrize("kind", ["leave", "move"])
def test_change_request_for_someone_not_in_your_team_is_404(client, world, kind):
    cast = world.cast
    client.force_login(cast.manager.user)
    data = {
        "effective_date": (world.today + datetime.timedelta(days=14)).isoformat(),
        "reason": "Tampered.",
        "new_manager": "manager@example.com",
    }

    response = client.post(reverse("offboarding:change_request", args=[cast.other_employee.pk, kind]), data)

    assert response.status_code == 404
    assert not ChangeRequest.objects.exists()


def test_requesting_an_application_that_is_not_requestable_is_a_form_error(client, world):
    cast = world.cast
    cast.other_app.requestable = False
    cast.other_app.save(update_fields=["requestable"])
    client.force_login(cast.employee.user)
    before = _all_requests(world)

    response = client.post(
        reverse("access:request"),
        {"application": cast.other_app.pk, "level": "user", "justification": "Month end."},
    )

    assert response.status_code == 200
    assert "application" in response.context["form"].errors
    assert _all_requests(world) == before
