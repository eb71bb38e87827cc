"""License usage (`assets.selectors.licenses_with_usage`): seats counted, never stored twice, in one query."""

import datetime

import pytest
from django.db.models import Count

from accounts.models import EntitlementStatus
from accounts.tests.factories import ApplicationFactory, EntitlementFactory
from assets.selectors import licenses_with_usage
from assets.tests.factories import LicenseFactory

# --- licenses_with_usage ----------------------------------------------------------------


@pytest.mark.django_db
def test_seats_used_counts_the_applications_active_and_still_revoking_entitlements():
    """A seat is free only once the vendor confirmed the revocation: `revoking` still holds one."""
    slack, zoom, unused = ApplicationFactory(name="Slack"), ApplicationFactory(name="Zoom"), ApplicationFactory()
    for _ in range(2):
        EntitlementFactory(application=slack)
    EntitlementFactory(application=slack, status=EntitlementStatus.PENDING)
    EntitlementFactory(application=slack, status=EntitlementStatus.REVOKING)
    EntitlementFactory(
        application=slack,
        status=EntitlementStatus.REVOKED,
        revoked_at=datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC),
    )
    EntitlementFactory(application=zoom)
    slack_main, slack_extra = LicenseFactory(application=slack), LicenseFactory(application=slack)
    zoom_license, unused_license = LicenseFactory(application=zoom), LicenseFactory(application=unused)

    usage = {license_.pk: license_.seats_used for license_ in licenses_with_usage()}

    assert usage == {slack_main.pk: 3, slack_extra.pk: 3, zoom_license.pk: 1, unused_license.pk: 0}


@pytest.mark.django_db
def test_seats_used_is_not_multiplied_by_further_annotations():
    slack = ApplicationFactory()
    for _ in range(3):
        EntitlementFactory(application=slack)
    license_ = LicenseFactory(application=slack)
    LicenseFactory(application=slack)

    annotated = licenses_with_usage().annotate(licenses_of_app=Count("application__licenses")).get(pk=license_.pk)

    assert (annotated.seats_used, annotated.licenses_of_app) == (3, 2)


@pytest.mark.parametrize("licenses", [3, 30])
@pytest.mark.django_db
def test_licenses_with_usage_is_one_query_however_many_licenses(licenses, django_assert_num_queries):
    for _ in range(licenses):
        license_ = LicenseFactory()
        EntitlementFactory(application=license_.application)

    with django_assert_num_queries(1):
        rows = [(lic.application.name, lic.seats_used, lic.annual_cost) for lic in licenses_with_usage()]

    assert len(rows) == licenses
    assert {seats for _, seats, _ in rows} == {1}
