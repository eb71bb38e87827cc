"""`DemoBuilder`: loads the Helix Logistics demo company, in one transaction, in story order.

It plans the company in memory from a fixed random seed (dates relative to today), writes the
company's past in bulk and today's changes through the services (see each part: `demo.company`,
`demo.access`, `demo.hardware`, `demo.lifecycle`: mixins sharing the builder's plan, such as its
people, logins and applications). `demo_load` is the one entry point: it does
nothing when the company is there already, refuses a partly deleted one, and sends no email.
"""

import contextlib
import logging
import random

from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import AccessRequest, Application, Department, Employee, Entitlement, Location
from assets.models import HardwareAsset
from demo.access import APPLICATIONS, AccessMixin
from demo.company import DOMAIN, LOCATIONS, MARKER_EMPLOYEE_NUMBER, ORG, SEED, CompanyMixin, Person
from demo.hardware import HardwareMixin
from demo.lifecycle import LifecycleMixin
from portal.groups import groups_sync


class DemoNotLoadable(Exception):
    """Some of the demo company's rows exist without its marker: someone edited or partly deleted it."""


@contextlib.contextmanager
def queue_log_quiet():
    """No queue log line per delivery enqueued on commit: the demo runs' tasks were run already."""
    queue_logger = logging.getLogger("django-q")
    level = queue_logger.level
    queue_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        queue_logger.setLevel(level)


def demo_leftovers() -> str:
    """The kinds of demo rows present (empty when none)."""
    found = []
    if Location.objects.filter(code__in=[loc[1] for loc in LOCATIONS]).exists():
        found.append("locations")
    if Department.objects.filter(code__in=[d.code for d in ORG]).exists():
        found.append("departments")
    if Application.objects.filter(name__in=[a.name for a in APPLICATIONS]).exists():
        found.append("applications")
    if Employee.objects.filter(work_email__endswith=f"@{DOMAIN}").exists():
        found.append("employees")
    return ", ".join(found)


def demo_load(*, stdout=None) -> "DemoBuilder | None":
    """Load the demo company; None when it is loaded already (nothing is written then).

    Raises `DemoNotLoadable` when some of its rows exist without the marker. All or nothing: one
    transaction. Demo emails are not sent, also those the services send once the transaction commits.
    """
    if Employee.objects.filter(employee_number=MARKER_EMPLOYEE_NUMBER).exists():
        return None
    leftovers = demo_leftovers()
    if leftovers:
        raise DemoNotLoadable(leftovers)
    builder = DemoBuilder(stdout=stdout)
    with (
        queue_log_quiet(),
        override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"),
        transaction.atomic(),
    ):
        builder.counts = builder.build()
    return builder


class DemoBuilder(CompanyMixin, AccessMixin, HardwareMixin, LifecycleMixin):
    """Plans the company in memory (deterministically), then writes it: the past in bulk, today through services."""

    def __init__(self, *, stdout=None):
        self.rng = random.Random(SEED)
        self.today = timezone.localdate()
        self.now = timezone.now()
        self.stdout = stdout
        self.people: list[Person] = []
        self.keyed: dict[str, Person] = {}
        self.used_emails: set[str] = set()
        self.used_names: set[tuple[str, str]] = set()
        self.notes: list[str] = []  # printed after the summary
        self.counts: dict[str, int] = {}

    def build(self) -> dict[str, int]:
        self.groups = groups_sync()
        self.plan_people()
        self.plan_statuses()
        self.write_reference_data()
        self.write_asset_models()
        self.write_people()
        self.write_users()
        self.write_applications()
        self.write_approver_logins()
        self.write_entitlements()
        self.write_licenses()
        self.write_assets()
        self.write_requests()
        self.write_delegation()
        self.recent_hardware_activity()
        self.recent_access_activity()
        self.write_sod_rule()
        runs = self.checklists()
        return {
            "employees": len(self.people),
            "departments": len(self.departments),
            "locations": len(self.locations),
            "applications": len(self.apps),
            "entitlements": Entitlement.objects.count(),
            "hardware assets": HardwareAsset.objects.count(),
            "access requests": AccessRequest.objects.count(),
            "checklist runs": len(runs),
        }
