"""Self-service pages issue the same number of queries whatever the size of what they list, pinned in
`query_counts.json`.

Each page in `PAGES` is measured in a small and a large company (`build(2)`, `build(5)`): the two
counts must be equal, and each must equal its baseline in `config/tests/query_counts.json` (section
"self_service"), above (a query added) or below (lower the baseline, keep it tight). A page without a
baseline fails, and so does a baseline naming no page. Regenerate on purpose, and review the diff:

    PORTAL_UPDATE_QUERY_COUNTS=1 pytest config/tests/test_admin_queries.py config/tests/test_selfservice_queries.py
"""

import datetime
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessReview, ApprovalPolicy, ReviewItem
from accounts.services import access_requests, delegations, reviews
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory, UserFactory
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from offboarding.engine import run_start, task_add
from offboarding.flows.returns import hardware_return_request
from portal.testing.query_counts import QueryCountBaselines

pytestmark = pytest.mark.django_db

REGENERATE = (
    "PORTAL_UPDATE_QUERY_COUNTS=1 pytest config/tests/test_admin_queries.py config/tests/test_selfservice_queries.py"
)
BASELINES = QueryCountBaselines(Path(__file__).with_name("query_counts.json"), "self_service", regenerate=REGENERATE)
SIZES = {"small": 2, "large": 5}


def build(size: int) -> dict:
    """A manager with `size` reports; each report holds `size` entitlements and devices and asks the manager
    for `size` applications; the manager owns an application `size` people hold; the first report has
    `size` tasks and returns; the manager reviews every report's access in a launched campaign."""
    manager = EmployeeFactory(user=UserFactory(username=f"mgr{size}"))
    owned = ApplicationFactory(name=f"Owned {size}", owner=manager)
    reports = []
    for r in range(size):
        report = EmployeeFactory(user=UserFactory(username=f"rep{size}-{r}"), manager=manager)
        reports.append(report)
        EntitlementFactory(employee=report, application=owned)
        for i in range(size):
            EntitlementFactory(employee=report, application=ApplicationFactory(name=f"Held {size}-{r}-{i}"))
            asset = HardwareAssetFactory(asset_tag=f"Q-{size}-{r}-{i}")
            asset_check_out(asset=asset, employee=report, acting_user=None, terms_accepted=i % 2 == 0)
            app = ApplicationFactory(name=f"Asked {size}-{r}-{i}", approval_policy=ApprovalPolicy.MANAGER)
            access_requests.access_request_create(
                employee=report, application=app, level="user", justification="x", acting_user=report.user
            )
    first = reports[0]
    run = run_start(employee=first, kind="join", event_date=timezone.localdate(), acting_user=None)
    for i in range(size):
        task_add(run=run, key=f"t{i}", title=f"Task {i}", assignee_type="employee", assignee=first)
    for asset in first.hardware.all():
        hardware_return_request(asset=asset, acting_user=None)
    today = timezone.localdate()
    delegations.delegation_create(
        delegator=reports[-1] if size > 1 else EmployeeFactory(user=UserFactory(username=f"d{size}")),
        delegate=manager,
        starts_on=today,
        ends_on=today + datetime.timedelta(days=1),
        acting_user=None,
    )
    # An access review of everything: the manager reviews each report's access (size * (size + 1) items).
    campaign = reviews.review_campaign_save(
        campaign=AccessReview(
            name=f"Review {size}", starts_on=today, due_on=today + datetime.timedelta(days=9), scope_everything=True
        ),
        acting_user=None,
    )
    reviews.review_campaign_launch(campaign=campaign, acting_user=None)
    review_item = ReviewItem.objects.filter(campaign=campaign, reviewer=manager).first()
    return {"manager": manager, "first": first, "owned": owned, "review_item": review_item}


PAGES = [
    ("manager", "access:approvals", None),
    ("manager", "offboarding:team", None),
    ("manager", "offboarding:team_member", "first"),
    ("manager", "access:owned_applications", None),
    ("manager", "access:owned_application", "owned"),
    ("manager", "access:delegations", None),
    ("manager", "home", None),
    ("manager", "access:reviews", None),
    ("manager", "access:review_item", "review_item"),
    ("first", "access:my_access", None),
    ("first", "access:my_requests", None),
    ("first", "access:request", None),
    ("first", "assets:my_hardware", None),
    ("first", "offboarding:my_tasks", None),
    ("first", "offboarding:my_returns", None),
]


def queries_for(client, world, who, name, arg) -> int:
    client.force_login(world[who].user)
    args = [world[arg].pk] if arg else []
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_every_page_has_a_baseline_and_every_baseline_a_page():
    BASELINES.check_complete(name for _, name, _ in PAGES)


def test_each_self_service_page_costs_the_same_at_two_sizes(client):
    """Each page's count equals its baseline at both sizes. The two companies are built once and every page
    measured in each; every page off its baseline is reported, not only the first."""
    small, large = build(SIZES["small"]), build(SIZES["large"])
    counts = {
        name: (queries_for(client, small, who, name, arg), queries_for(client, large, who, name, arg))
        for who, name, arg in PAGES
    }
    problems = []
    for page, (at_small, at_large) in counts.items():
        try:
            BASELINES.check(page, {str(SIZES["small"]): at_small, str(SIZES["large"]): at_large})
        except pytest.fail.Exception as failure:
            problems.append(str(failure))
    grew = {name: pair for name, pair in counts.items() if pair[0] != pair[1]}
    assert not grew, f"queries grew with the data (small, large): {grew}"
    assert not problems, "\n".join(problems)
