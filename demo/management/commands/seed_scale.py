"""`manage.py seed_scale --employees N`: a large synthetic company for benchmarks.

N employees (numbers `S0000001`…, emails `s0000001@scale.example`) in a reporting tree with a span
of 8, and in proportion: about N/40 departments (a tree with heads), N/1500 locations on three
continents, N/2000 roles with 4 birthright applications each, N/1500 applications (every approval
policy) with licenses, about 1.3 hardware assets per employee in every status (held ones with one
open check-out to the holder; returned, repaired, retired and lost ones with a closed one), about
6 entitlements per employee (birthright and extra; revoked for leavers, pending for pre-hires).

Logins: every manager (who approves their reports' requests, and owns the applications) and
every requester has one, without a password (they would sign in through single sign-on); a leaver's
is deactivated.

The lifecycle history, in proportion (PROPORTIONS, also written into each benchmark result):
- access requests (N/25), made, decided and withdrawn **through the approval services** as people
  would click them (`access_request_create`, `approval_step_decide`, `access_request_cancel`), so the
  chains, the object permissions (deciding a step, withdrawing one's request) and their audit events
  are exactly the product's: about 55% pending (some at the owner's step), 25% rejected, 20%
  withdrawn; their times are moved back afterwards as the demo does (`AccessMixin.backdate_request`).
  None is approved to the end (that would provision access after commit).
- approval delegations (N/500), through `delegation_create` (which grants the delegate the steps).
- checklist runs with their tasks and audit events, written in bulk as history: a finished leave
  run per leaver (disable login, one revocation per entitlement, return, hand-over; audit: leave
  started, terminated, login disabled, one revoke per entitlement), a running join run per pre-hire
  (its tasks due from the first day, so no worker runs them early), a finished join run per
  employee hired in the last 180 days, a finished move run for 3% of the others. These tasks have
  no template: the checklist templates stay empty, so a benchmark's leavers get only the engine's
  own tasks.

Everything is written with bulk inserts (and one simple-history row per row) in a single
transaction, chunk by chunk, with no per-row queries: 100 000 employees take a few minutes on
SQLite. Deterministic for a given N and `--seed`.

It runs on an empty database or next to the demo company (its names and codes do not overlap).
Running it again with the same N does nothing; with another N it refuses (use a fresh database).
"""

import argparse
import datetime
import random
import time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import (
    Application,
    ApprovalPolicy,
    Department,
    Employee,
    EmployeeStatus,
    EmploymentType,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    Location,
    Region,
    Role,
    RoleApplication,
    Sensitivity,
)
from accounts.services.access_requests import access_request_cancel, access_request_create
from accounts.services.approval_steps import approval_step_decide
from accounts.services.delegations import delegation_create
from assets.models import AssetCategory, AssetCheckout, AssetModel, AssetStatus, HardwareAsset, License, RoleKitItem
from demo.access import AccessMixin
from demo.builder import queue_log_quiet
from demo.seeding import DEFAULT_BATCH_SIZE, RawInserter, aware, bulk_change, bulk_insert
from offboarding.models import Assignee, ChecklistKind, ChecklistRun, RunStatus, Task, TaskStatus
from portal.auditchain import chain_seal_rows
from portal.models import AuditEvent, AuditEventPersonal

PREFIX = "S"
DOMAIN = "scale.example"
REASON = "Synthetic data (seed_scale)"
SPAN = 8  # reports per manager
CHUNK = 5000  # employees planned and written per round

CITIES = [
    ("Berlin", "DE", Region.EMEA), ("London", "GB", Region.EMEA), ("Paris", "FR", Region.EMEA),
    ("Madrid", "ES", Region.EMEA), ("Warsaw", "PL", Region.EMEA), ("Dublin", "IE", Region.EMEA),
    ("Amsterdam", "NL", Region.EMEA), ("Stockholm", "SE", Region.EMEA), ("Milan", "IT", Region.EMEA),
    ("Dubai", "AE", Region.EMEA), ("Cape Town", "ZA", Region.EMEA), ("New York", "US", Region.AMER),
    ("Austin", "US", Region.AMER), ("Toronto", "CA", Region.AMER), ("Mexico City", "MX", Region.AMER),
    ("São Paulo", "BR", Region.AMER), ("Chicago", "US", Region.AMER), ("Bogotá", "CO", Region.AMER),
    ("Singapore", "SG", Region.APAC), ("Sydney", "AU", Region.APAC), ("Tokyo", "JP", Region.APAC),
    ("Bangalore", "IN", Region.APAC), ("Seoul", "KR", Region.APAC), ("Manila", "PH", Region.APAC),
]  # fmt: skip
AREAS = ["Engineering", "Operations", "Sales", "Support", "Finance", "Marketing", "People", "Logistics", "Product"]
FAMILIES = ["Software Engineer", "Account Executive", "Support Agent", "Analyst", "Operations Specialist",
            "Designer", "Recruiter", "Accountant", "Warehouse Lead", "Product Manager"]  # fmt: skip
FIRST = str.split(
    "Anna Ben Chloe David Elif Farah Gustav Hana Ivan Jana Kofi Lina Mateo Nia Omar "
    "Priya Quinn Rosa Sven Tara Uma Victor Wen Ximena Yusuf Zoe Aiko Bruno Carmen Dmitri"
)
LAST = str.split(
    "Adams Berg Costa Dubois Eriksen Fischer Garcia Haddad Ito Jansen Kowalski Larsen Moreau Nakamura Okafor "
    "Petrov Quint Rossi Silva Tanaka Ueda Vargas Weber Xu Yilmaz Zhang Novak Murphy Singh Kim"
)
MODELS = [
    ("Apple", "MacBook Pro 14", AssetCategory.LAPTOP, "2399.00"),
    ("Lenovo", "ThinkPad T14", AssetCategory.LAPTOP, "1399.00"),
    ("Dell", "Latitude 5440", AssetCategory.LAPTOP, "1199.00"),
    ("Apple", "iPhone 15", AssetCategory.PHONE, "899.00"),
    ("Samsung", "Galaxy S24", AssetCategory.PHONE, "799.00"),
    ("Dell", "P2723DE", AssetCategory.MONITOR, "389.00"),
    ("Yubico", "YubiKey 5C", AssetCategory.TOKEN, "55.00"),
    ("HID", "Seos badge", AssetCategory.BADGE, "9.00"),
]
UNHELD = [  # status, share of the unheld assets
    (AssetStatus.IN_STOCK, 45),
    (AssetStatus.IN_TRANSIT, 10),
    (AssetStatus.IN_REPAIR, 10),
    (AssetStatus.RETIRED, 28),
    (AssetStatus.LOST, 7),
]
POLICIES = [ApprovalPolicy.NONE, ApprovalPolicy.MANAGER, ApprovalPolicy.OWNER, ApprovalPolicy.MANAGER_THEN_OWNER]


def employee_count(value: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"--employees must be a whole number, not {value!r}.")
    if number < 1:
        raise argparse.ArgumentTypeError(f"--employees must be at least 1, not {number}.")
    return number


# What a company of N employees gets (stated in every benchmark result).
PROPORTIONS = {
    "locations": "N/1500 (3 to 200)",
    "departments": "N/40 (at least 3)",
    "roles": "N/2000 (4 to 60), 4 birthright applications each",
    "applications": "N/1500 (12 to 300), every approval policy; licenses for 4 in 5",
    "hardware assets": "1.3 per employee, every status; check-outs for held and past ones",
    "entitlements": "about 6 per employee (birthright + 0-4 requested); revoked for leavers, pending for pre-hires",
    "logins": "every manager and every requester (no password)",
    "access requests": "N/25 through the services: ~55% pending, ~25% rejected, ~20% withdrawn",
    "approval steps": "as the policies make them (1-2 per request)",
    "object permissions": "as the services grant them: decide a pending step, withdraw one's pending request",
    "approval delegations": "N/500 through the services (the delegate gets the delegator's pending steps)",
    "checklist runs": "leave (done) per leaver, join (running) per pre-hire, join (done) per hire of the last "
    "180 days, move (done) for 3% of the others",
    "tasks": "4-5 per run plus one revocation per leaver's entitlement / one provisioning per joiner's",
    "audit events": "the services' for requests, decisions and delegations; per run: started; per leaver: "
    "terminated, login disabled, one revoke per entitlement",
}
REQUESTS_PER = 25  # one access request per this many employees
DELEGATIONS_PER = 500
RECENT_HIRE_DAYS = 180
MOVED_SHARE = 0.03
JUSTIFICATION = "Needed for my work (synthetic request, seed_scale)."
REJECTION = "Not needed for this role (synthetic decision, seed_scale)."


def proportions(n: int) -> dict[str, int]:
    """How many of each thing a company of `n` employees gets."""
    return {
        "locations": max(3, min(200, n // 1500)),
        "departments": max(3, n // 40),
        "roles": max(4, min(60, n // 2000)),
        "applications": max(12, min(300, n // 1500)),
        "assets": round(n * 1.3),
        "access_requests": max(4, n // REQUESTS_PER),
        "delegations": max(1, n // DELEGATIONS_PER),
    }


def seeded_counts() -> dict[str, int]:
    """Rows of each kind the database holds (what a benchmark ran on), by model label.

    Every model with rows, history tables and the object-permission tables included."""
    from django.apps import apps

    counts = {}
    for model in apps.get_models():
        count = model._default_manager.count() if model is not AuditEvent else AuditEvent.objects.count()
        if count:
            counts[model._meta.label] = count
    return counts


class Command(BaseCommand):
    help = "Create a large synthetic company (N employees and proportional data) for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--employees", type=employee_count, required=True, metavar="N", help="Employees (≥ 1).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="Rows per INSERT batch.")

    def handle(self, *args, employees: int, seed: int, batch_size: int, **options):
        existing = Employee.objects.filter(employee_number__startswith=PREFIX).count()
        if existing == employees:
            self.stdout.write(f"The synthetic company with {employees} employees is already loaded; nothing to do.")
            return
        if existing:
            raise CommandError(
                f"This database already holds {existing} synthetic employees (seed_scale --employees {existing}); "
                f"refusing to add {employees} more. Use a fresh database, e.g. SQLITE_PATH=/tmp/scale.sqlite3."
            )
        self.verbosity = options.get("verbosity", 1)
        started = time.monotonic()
        # The services send emails once the transaction commits: none for a synthetic company.
        with (
            queue_log_quiet(),
            override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"),
            transaction.atomic(),
        ):
            counts = ScaleBuilder(n=employees, seed=seed, batch_size=batch_size, log=self._log).build()
        if connection.vendor == "postgresql":
            # Planner statistics for the freshly loaded tables, as autovacuum would gather them shortly.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        if self.verbosity:
            self.stdout.write(
                self.style.SUCCESS(f"Created the synthetic company in {time.monotonic() - started:.1f}s: ")
                + ", ".join(f"{v} {k}" for k, v in counts.items())
            )

    def _log(self, message: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(message)


class ScaleBuilder:
    def __init__(self, *, n: int, seed: int = 1, batch_size: int = DEFAULT_BATCH_SIZE, log=None):
        self.n = n
        self.rng = random.Random(seed)
        self.batch = batch_size
        self.log = log or (lambda message: None)
        self.today = timezone.localdate()
        self.now = timezone.now()
        self.sizes = proportions(n)
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()

    def insert(self, model, objs):
        bulk_insert(model, objs, batch_size=self.batch, reason=REASON, date=self.now)
        label = model._meta.verbose_name_plural
        self.counts[label] = self.counts.get(label, 0) + len(objs)
        return objs

    def step(self, what: str) -> None:
        self.log(f"  {time.monotonic() - self.started:7.1f}s {what}")

    def build(self) -> dict[str, int]:
        self.reference_data()
        self.step("reference data")
        self.people()
        self.step("employees")
        self.applications()
        self.step("applications")
        self.access_and_hardware()
        self.step("entitlements, hardware")
        self.access_requests()
        self.step("access requests (services)")
        self.delegations()
        self.step("delegations (services)")
        self.checklist_runs()
        self.step("checklist runs, tasks, audit events")
        return self.counts

    # --- reference data ------------------------------------------------------------------------

    def reference_data(self):
        sizes = self.sizes
        locations = []
        for k in range(sizes["locations"]):
            city, country, region = CITIES[k % len(CITIES)]
            suffix = f" {k // len(CITIES) + 1}" if k >= len(CITIES) else ""
            locations.append(
                Location(
                    name=f"{city}{suffix} (synthetic)",
                    code=f"S-L{k:03d}",
                    country=country,
                    region=region,
                    city=city,
                )
            )
        self.locations = [loc.pk for loc in self.insert(Location, locations)]
        # Department tree, level by level (a parent is written before its children).
        self.departments: list[Department] = []
        total = sizes["departments"]
        level_start, level_size = 0, 1
        while level_start < total:
            batch = []
            for k in range(level_start, min(total, level_start + level_size)):
                parent = self.departments[(k - 1) // SPAN] if k else None
                batch.append(
                    Department(
                        name=f"{AREAS[k % len(AREAS)]} {k:05d}",
                        code=f"S-D{k:05d}",
                        parent=parent,
                        cost_center=f"S-CC-{k:05d}",
                    )
                )
            self.departments += self.insert(Department, batch)
            level_start, level_size = level_start + level_size, level_size * SPAN
        self.roles = self.insert(
            Role,
            [
                Role(name=f"{FAMILIES[k % len(FAMILIES)]} (profile S{k:02d})", code=f"s-profile-{k:02d}")
                for k in range(sizes["roles"])
            ],
        )
        self.models = self.insert(
            AssetModel,
            [
                AssetModel(manufacturer=mf, name=f"{name} (S)", category=c, default_cost=Decimal(cost))
                for mf, name, c, cost in MODELS
            ],
        )
        self.laptops = [m for m in self.models if m.category == AssetCategory.LAPTOP]
        self.extras = [m for m in self.models if m.category != AssetCategory.LAPTOP]
        self.insert(
            RoleKitItem,
            [RoleKitItem(role=r, asset_model=self.laptops[k % len(self.laptops)]) for k, r in enumerate(self.roles)]
            + [RoleKitItem(role=r, asset_model=self.extras[k % len(self.extras)]) for k, r in enumerate(self.roles)],
        )

    # --- people ----------------------------------------------------------------------------------

    def plan_status(self, i: int) -> tuple[str, datetime.date, datetime.date | None]:
        rng, n = self.rng, self.n
        start = self.today - datetime.timedelta(days=rng.randint(30, 3650))
        has_reports = i * SPAN + 1 < n
        forced = {
            n - 1: EmployeeStatus.TERMINATED,
            n - 2: EmployeeStatus.PRE_HIRE,
            n - 3: EmployeeStatus.LEAVE_OF_ABSENCE,
        }
        status = forced.get(i) if n >= 10 else None
        if status is None:
            roll = rng.random()
            status = EmployeeStatus.ACTIVE
            if not has_reports and i > 0:
                if roll < 0.03:
                    status = EmployeeStatus.PRE_HIRE
                elif roll < 0.09:
                    status = EmployeeStatus.TERMINATED
                elif roll < 0.12:
                    status = EmployeeStatus.LEAVE_OF_ABSENCE
        end = None
        if status == EmployeeStatus.PRE_HIRE:
            start = self.today + datetime.timedelta(days=rng.randint(1, 60))
        elif status == EmployeeStatus.TERMINATED:
            end = self.today - datetime.timedelta(days=rng.randint(1, 700))
            start = min(start, end - datetime.timedelta(days=rng.randint(30, 900)))
        return status, start, end

    def people(self):
        rng, n = self.rng, self.n
        n_depts, n_locs, n_roles = len(self.departments), len(self.locations), len(self.roles)
        self.emp_pk = [0] * n
        self.emp_status = [""] * n
        self.emp_start: list[datetime.date] = [self.today] * n
        self.emp_end: list[datetime.date | None] = [None] * n
        self.emp_role = [0] * n
        self.emp_loc = [0] * n
        dept_of = [0] * n
        self.emp_user: list[int | None] = [None] * n
        self.emp_manager: list[int | None] = [None] * n
        # Requesters: active employees who manage nobody, one in REQUESTS_PER (each asks once, below).
        self.p_requester = min(1.0, 1.5 / REQUESTS_PER)
        users = RawInserter(get_user_model())
        unusable = make_password(None)
        inserter = RawInserter(Employee, reason=REASON, date=self.now)
        level_start, level_size = 0, 1
        while level_start < n:
            level_end = min(n, level_start + level_size)
            for chunk_start in range(level_start, level_end, CHUNK):
                rows, user_rows = [], []
                for i in range(chunk_start, min(level_end, chunk_start + CHUNK)):
                    manager = (i - 1) // SPAN if i else None
                    self.emp_manager[i] = manager
                    if i < n_depts:
                        dept_of[i] = i  # the first employees head the departments
                    elif manager is not None and rng.random() < 0.85:
                        dept_of[i] = dept_of[manager]
                    else:
                        dept_of[i] = rng.randrange(n_depts)
                    status, start, end = self.plan_status(i)
                    role = rng.randrange(n_roles)
                    loc = self.emp_loc[manager] if manager is not None and rng.random() < 0.7 else rng.randrange(n_locs)
                    self.emp_status[i], self.emp_start[i], self.emp_end[i] = status, start, end
                    self.emp_role[i], self.emp_loc[i] = role, loc
                    self.emp_pk[i] = inserter.allocate()
                    kind = rng.random()
                    manages = i * SPAN + 1 < n
                    wants = status == EmployeeStatus.ACTIVE and rng.random() < self.p_requester
                    if status != EmployeeStatus.PRE_HIRE and (manages or wants):
                        self.emp_user[i] = users.allocate()
                        user_rows.append(
                            {
                                "id": self.emp_user[i],
                                "username": f"{PREFIX.lower()}{i + 1:07d}",
                                "email": f"{PREFIX.lower()}{i + 1:07d}@{DOMAIN}",
                                "password": unusable,
                                "is_active": status != EmployeeStatus.TERMINATED,
                                "date_joined": aware(min(start, self.today), 8),
                            }
                        )
                    rows.append(
                        {
                            "id": self.emp_pk[i],
                            "employee_number": f"{PREFIX}{i + 1:07d}",
                            # Every first × last name pair once in each 900 people (Anna Garcia is
                            # number 181): a name search finds someone at every size from 200 up.
                            "first_name": FIRST[i % len(FIRST)],
                            "last_name": LAST[(i // len(FIRST) + i) % len(LAST)],
                            "work_email": f"{PREFIX.lower()}{i + 1:07d}@{DOMAIN}",
                            "title": ("Manager, " if i * SPAN + 1 < n else "") + FAMILIES[role % len(FAMILIES)],
                            "department_id": self.departments[dept_of[i]].pk,
                            "location_id": self.locations[loc],
                            "manager_id": self.emp_pk[manager] if manager is not None else None,
                            "role_id": self.roles[role].pk,
                            "employment_type": EmploymentType.CONTRACTOR
                            if kind < 0.05
                            else EmploymentType.PART_TIME
                            if kind < 0.1
                            else EmploymentType.FULL_TIME,
                            "status": status,
                            "start_date": start,
                            "end_date": end,
                            "user_id": self.emp_user[i],
                        }
                    )
                self.counts["logins"] = self.counts.get("logins", 0) + users.insert(user_rows)
                self.counts["employees"] = self.counts.get("employees", 0) + inserter.insert(rows)
            level_start, level_size = level_end, level_size * SPAN
        inserter.finish()
        users.finish()
        # Heads: the first employees, who sit at the top of the reporting tree.
        for k, dept in enumerate(self.departments):
            dept.head_id = self.emp_pk[k % n]
        bulk_change(Department, self.departments, ["head"], batch_size=self.batch, reason=REASON, date=self.now)

    # --- applications --------------------------------------------------------------------------

    def applications(self):
        rng, n = self.rng, self.n
        managers = [self.emp_pk[i] for i in range(min(n, max(1, n // SPAN)))]
        apps = []
        for k in range(self.sizes["applications"]):
            apps.append(
                Application(
                    name=f"Synthetic App {k:03d}",
                    description="Synthetic application for benchmarks.",
                    owner_id=rng.choice(managers),
                    access_levels=["user", "power_user", "admin"],
                    approval_policy=POLICIES[k % len(POLICIES)],
                    requestable=k % 7 != 0,
                    sensitivity=[Sensitivity.LOW, Sensitivity.MEDIUM, Sensitivity.HIGH][k % 3],
                    knowledge_base_url=f"https://kb.{DOMAIN}/apps/{k:03d}",
                )
            )
        self.apps = self.insert(Application, apps)
        a = len(self.apps)
        # Each role: the two company-wide applications and two of its own.
        self.birthrights = {
            r: list(dict.fromkeys([0, 1, 2 + (2 * r) % (a - 2), 2 + (2 * r + 1) % (a - 2)]))
            for r in range(len(self.roles))
        }
        rows = []
        for r, role in enumerate(self.roles):
            for k in self.birthrights[r]:
                rows.append(RoleApplication(role=role, application=self.apps[k], access_level="user"))
        self.insert(RoleApplication, rows)
        expected = self.n * 6 // a
        licenses = []
        for k, app in enumerate(self.apps):
            if k % 5 == 4:
                continue  # internal tool, no license
            renewal = self.today + datetime.timedelta(days=rng.randint(5, 365))
            licenses.append(
                License(
                    application=app,
                    vendor=f"Vendor {k:03d}",
                    contract_number=f"S-C-{k:05d}",
                    seats_purchased=max(5, int(expected * rng.uniform(0.9, 1.5))),
                    cost_per_seat=Decimal(rng.choice(["48.00", "96.00", "120.00", "240.00", "660.00"])),
                    currency=rng.choice(["EUR", "USD", "USD", "GBP"]),
                    start_date=renewal - datetime.timedelta(days=365),
                    renewal_date=renewal,
                )
            )
        self.insert(License, licenses)

    # --- entitlements and hardware, chunk by chunk ------------------------------------------

    def access_and_hardware(self):
        n, sizes = self.n, self.sizes
        held_statuses = (EmployeeStatus.ACTIVE, EmployeeStatus.LEAVE_OF_ABSENCE)
        holders = sum(1 for s in self.emp_status if s in held_statuses)
        leavers = sum(1 for s in self.emp_status if s == EmployeeStatus.TERMINATED)
        # Held: one laptop per holder, a second item for some, a laptop not yet returned by ~40% of leavers;
        # the rest of the ~1.3 per employee is unheld (stock, transit, repair, retired, lost).
        self.p_second = 0.18
        expected_held = holders * (1 + self.p_second) + leavers * 0.4
        self.p_unheld = max(0.0, (sizes["assets"] - expected_held) / max(1, n))
        self.w = {
            model: RawInserter(model, reason=REASON, date=self.now)
            for model in (Entitlement, HardwareAsset, AssetCheckout)
        }
        self.asset_seq = 0
        self.emp_apps: list[list[tuple[int, int, str]]] = [[] for _ in range(n)]  # (app index, entitlement id, status)
        for chunk_start in range(0, n, CHUNK):
            self.chunk(chunk_start, min(n, chunk_start + CHUNK))
        # Small companies: make sure every asset status exists.
        missing = set(AssetStatus.values) - set(HardwareAsset.objects.values_list("status", flat=True).distinct())
        if missing:
            self.chunk(0, 1, force_statuses=sorted(missing))
        for inserter in self.w.values():
            inserter.finish()

    def new_asset(self, status, model, i, holder_pk=None) -> dict:
        self.asset_seq += 1
        purchased = self.today - datetime.timedelta(days=self.rng.randint(10, 1800))
        return {
            "id": self.w[HardwareAsset].allocate(),
            "asset_tag": f"{PREFIX}-{self.asset_seq:07d}",
            "serial": f"SSN{self.asset_seq:09d}",
            "model_id": model.pk,
            "status": status,
            "assigned_to_id": holder_pk,
            "location_id": self.locations[self.emp_loc[i]],
            "purchase_date": purchased,
            "purchase_cost": model.default_cost,
            "warranty_end": purchased + datetime.timedelta(days=3 * 365),
        }

    def open_checkout(self, asset: dict, employee_pk: int, out: datetime.datetime, accepted: bool) -> dict:
        return {
            "id": self.w[AssetCheckout].allocate(),
            "asset_id": asset["id"],
            "employee_id": employee_pk,
            "checked_out_at": out,
            "terms_accepted_at": out + datetime.timedelta(hours=4) if accepted else None,
        }

    def chunk(self, lo: int, hi: int, force_statuses=()):
        rng, a = self.rng, len(self.apps)
        ents, assets, checkouts = [], [], []
        unheld_statuses = [s for s, _w in UNHELD]
        unheld_weights = [w for _s, w in UNHELD]
        ent_ids = self.w[Entitlement]
        for i in range(lo, hi):
            if force_statuses:
                break
            pk, status = self.emp_pk[i], self.emp_status[i]
            start, end = self.emp_start[i], self.emp_end[i]
            granted = aware(start, 9) if start <= self.today else None
            revoked = aware(end, 18) if end else None
            # Entitlements: birthrights plus 0-4 extras.
            birthrights = self.birthrights[self.emp_role[i]]
            extra = [k for k in rng.sample(range(a), min(a, 6)) if k not in birthrights][: rng.randint(0, 4)]
            for k in birthrights + extra:
                source = EntitlementSource.BIRTHRIGHT if k in birthrights else EntitlementSource.REQUEST
                row = {"id": None, "employee_id": pk, "application_id": self.apps[k].pk, "source": source}
                if status == EmployeeStatus.PRE_HIRE:
                    if source != EntitlementSource.BIRTHRIGHT:
                        continue
                    row["status"] = EntitlementStatus.PENDING
                elif status == EmployeeStatus.TERMINATED:
                    row["status"], row["granted_at"], row["revoked_at"] = EntitlementStatus.REVOKED, granted, revoked
                else:
                    row["status"], row["granted_at"] = EntitlementStatus.ACTIVE, granted
                    roll = rng.random()
                    if roll < 0.08:
                        row["last_used_at"] = max(granted, self.now - datetime.timedelta(days=rng.randint(91, 400)))
                    elif roll < 0.9:
                        row["last_used_at"] = max(granted, self.now - datetime.timedelta(days=rng.randint(0, 20)))
                row["id"] = ent_ids.allocate()
                ents.append(row)
                self.emp_apps[i].append((k, row["id"], row["status"]))
            # Hardware.
            if status in (EmployeeStatus.ACTIVE, EmployeeStatus.LEAVE_OF_ABSENCE) or (
                status == EmployeeStatus.TERMINATED and rng.random() < 0.4
            ):
                asset_status = (
                    AssetStatus.ASSIGNED if status != EmployeeStatus.TERMINATED else AssetStatus.PENDING_RETURN
                )
                items = [self.laptops[self.emp_role[i] % len(self.laptops)]]
                if status != EmployeeStatus.TERMINATED and rng.random() < self.p_second:
                    items.append(rng.choice(self.extras))
                for model in items:
                    asset = self.new_asset(asset_status, model, i, holder_pk=pk)
                    assets.append(asset)
                    out = aware(max(asset["purchase_date"], start), 10)
                    checkouts.append(self.open_checkout(asset, pk, out, rng.random() < 0.9))
            p = self.p_unheld
            while p > 0:
                if rng.random() < min(1.0, p):
                    asset_status = rng.choices(unheld_statuses, unheld_weights)[0]
                    assets.append(self.new_asset(asset_status, rng.choice(self.models), i))
                    self._closed_checkout(assets[-1], i, checkouts)
                p -= 1
        for asset_status in force_statuses:
            held = asset_status in (AssetStatus.ASSIGNED, AssetStatus.PENDING_RETURN)
            asset = self.new_asset(asset_status, self.models[0], lo, holder_pk=self.emp_pk[lo] if held else None)
            assets.append(asset)
            if held:
                checkouts.append(self.open_checkout(asset, self.emp_pk[lo], self.now, True))
            else:
                self._closed_checkout(asset, lo, checkouts)
        for model, rows in (
            (Entitlement, ents),
            (HardwareAsset, assets),
            (AssetCheckout, checkouts),
        ):
            label = str(model._meta.verbose_name_plural)
            self.counts[label] = self.counts.get(label, 0) + self.w[model].insert(rows)

    def _closed_checkout(self, asset: dict, i: int, checkouts: list) -> None:
        status = asset["status"]
        if status == AssetStatus.IN_TRANSIT or (status == AssetStatus.IN_STOCK and self.rng.random() < 0.7):
            return
        out = aware(asset["purchase_date"] + datetime.timedelta(days=2), 10)
        back = max(out, min(self.now, out + datetime.timedelta(days=self.rng.randint(30, 700))))
        row = self.open_checkout(asset, self.emp_pk[i], out, True)
        row["checked_in_at"] = back
        row["condition_on_return"] = {AssetStatus.LOST: "lost", AssetStatus.IN_REPAIR: "damaged"}.get(status, "good")
        checkouts.append(row)

    # --- access requests and delegations, through the approval services ---------------------------

    # The demo's way of giving requests made through the services their past (times only).
    backdate_request = AccessMixin.backdate_request

    def access_requests(self):
        """N/REQUESTS_PER requests made, decided and withdrawn through the services (see the module doc)."""
        rng, n = self.rng, self.n
        requestable = [
            k for k, app in enumerate(self.apps) if app.requestable and app.approval_policy != ApprovalPolicy.NONE
        ]
        requesters = [
            i
            for i in range(1, n)
            if self.emp_user[i] is not None
            and self.emp_status[i] == EmployeeStatus.ACTIVE
            and self.emp_user[self.emp_manager[i]] is not None
        ]
        rng.shuffle(requesters)
        wanted = self.sizes["access_requests"]
        people = Employee.objects.select_related("user", "manager").in_bulk([self.emp_pk[i] for i in requesters])
        apps = {app.pk: app for app in Application.objects.select_related("owner").filter(
            pk__in=[self.apps[k].pk for k in requestable])}  # fmt: skip
        outcomes = {"pending": 0, "rejected": 0, "withdrawn": 0, "refused": 0}
        made = 0
        for i in requesters:
            if made >= wanted:
                break
            held = {k for k, _pk, _status in self.emp_apps[i]}
            # Not one's own application nor one's manager's: the service then routes or merges the owner
            # step (one person decides once), and the chain would not show the policy as it reads.
            bosses = {self.emp_pk[i], self.emp_pk[self.emp_manager[i]]}
            choices = [k for k in requestable if k not in held and self.apps[k].owner_id not in bosses]
            if not choices:
                continue
            employee = people[self.emp_pk[i]]
            application = apps[self.apps[rng.choice(choices)].pk]
            try:
                request = access_request_create(
                    employee=employee,
                    application=application,
                    level="user",
                    justification=JUSTIFICATION,
                    end_date=None,
                    acting_user=employee.user,
                )
            except ValidationError:  # the product refuses it (an approver who cannot sign in, say): not shown
                outcomes["refused"] += 1
                continue
            made += 1
            roll = rng.random()
            steps = list(request.steps.select_related("approver__user").order_by("order"))
            if roll < 0.25:
                first = steps[0]
                approval_step_decide(step=first, acting_user=first.approver.user, approve=False, comment=REJECTION)
                outcomes["rejected"] += 1
            elif roll < 0.45:
                access_request_cancel(request=request, acting_user=employee.user)
                outcomes["withdrawn"] += 1
            else:
                if roll < 0.6 and len(steps) > 1:  # waiting on the owner: the manager approved
                    approval_step_decide(step=steps[0], acting_user=steps[0].approver.user, approve=True)
                outcomes["pending"] += 1
            self.backdate_request(request, self.now - datetime.timedelta(hours=rng.randint(2, 24 * 60)))
        self.counts["access requests"] = made
        self.log(f"    access requests: {outcomes}")

    def delegations(self):
        """N/DELEGATIONS_PER managers let a fellow manager (same manager) decide for them, through the service."""
        rng, n = self.rng, self.n
        managers = [i for i in range(1, n) if i * SPAN + 1 < n and self.emp_user[i] is not None]
        rng.shuffle(managers)
        people = Employee.objects.select_related("user").in_bulk([self.emp_pk[i] for i in managers])
        made = 0
        for i in managers:
            if made >= self.sizes["delegations"]:
                break
            siblings = [j for j in managers if j != i and self.emp_manager[j] == self.emp_manager[i]]
            if not siblings:
                continue
            delegator, delegate = people[self.emp_pk[i]], people[self.emp_pk[rng.choice(siblings)]]
            starts = self.today + datetime.timedelta(days=rng.choice([0, 0, 0, 3, 10]))
            try:
                delegation_create(
                    delegator=delegator,
                    delegate=delegate,
                    starts_on=starts,
                    ends_on=starts + datetime.timedelta(days=rng.randint(3, 14)),
                    acting_user=delegator.user,
                    reason="Out of office (synthetic, seed_scale)",
                )
            except ValidationError:
                continue
            made += 1
        self.counts["approval delegations"] = made

    # --- checklist runs, tasks and their audit events (history, in bulk) ------------------------------

    def checklist_runs(self):
        """The company's lifecycle so far (see the module doc): runs, tasks and audit events in bulk."""
        rng, n = self.rng, self.n
        runs_w = RawInserter(ChecklistRun, reason=REASON, date=self.now)
        tasks_w = RawInserter(Task, reason=REASON, date=self.now)
        audit_w = RawInserter(AuditEvent)
        personal_w = RawInserter(AuditEventPersonal)
        started_action = {
            ChecklistKind.JOIN: AuditEvent.Action.JOIN_STARTED,
            ChecklistKind.LEAVE: AuditEvent.Action.LEAVE_STARTED,
            ChecklistKind.MOVE: AuditEvent.Action.MOVE_STARTED,
        }
        recent = self.today - datetime.timedelta(days=RECENT_HIRE_DAYS)
        app_names = [app.name for app in self.apps]
        runs, tasks, events = [], [], []  # of the current chunk

        def task(run, key, title, assignee, *, action="", params=None, due, done, person=None):
            row = {
                "id": tasks_w.allocate(),
                "run_id": run["id"],
                "key": key,
                "title": title,
                "assignee_type": assignee,
                "assignee_id": person,
                "action": action,
                "params": params or {},
                "due_at": due,
                "created_at": run["created_at"],
                "status": TaskStatus.DONE if done else TaskStatus.PENDING,
            }
            if done:
                row["completed_at"] = min(self.now, due)
                if action:
                    row["attempts"], row["started_at"] = 1, row["completed_at"] - datetime.timedelta(seconds=1)
                    row["queued_at"] = row["started_at"]
            tasks.append(row)

        def event(action, moment, target_type, target_id, target_repr, detail):
            events.append(
                {
                    "id": audit_w.allocate(),
                    "created_at": moment,
                    "actor_repr": "system",
                    "action": action,
                    "target_type": target_type,
                    "target_id": str(target_id),
                    "target_repr": target_repr[:255],
                    "detail": detail,
                }
            )

        for lo in range(0, n, CHUNK):
            for i in range(lo, min(n, lo + CHUNK)):
                status, start, end = self.emp_status[i], self.emp_start[i], self.emp_end[i]
                manager = self.emp_pk[self.emp_manager[i]] if self.emp_manager[i] is not None else None
                if status == EmployeeStatus.TERMINATED:
                    kind, day, done = ChecklistKind.LEAVE, end, True
                elif status == EmployeeStatus.PRE_HIRE:
                    kind, day, done = ChecklistKind.JOIN, start, False
                elif start >= recent:
                    kind, day, done = ChecklistKind.JOIN, start, True
                elif rng.random() < MOVED_SHARE:
                    kind, day, done = (
                        ChecklistKind.MOVE,
                        self.today - datetime.timedelta(days=rng.randint(7, 300)),
                        True,
                    )
                else:
                    continue
                effective = aware(day, 18 if kind == ChecklistKind.LEAVE else 9)
                created = min(self.now, effective - datetime.timedelta(days=rng.randint(1, 14)))
                run = {
                    "id": runs_w.allocate(),
                    "employee_id": self.emp_pk[i],
                    "kind": kind,
                    "event_date": day,
                    "effective_at": effective,
                    "created_at": created,
                    "status": RunStatus.DONE if done else RunStatus.RUNNING,
                    "completed_at": min(self.now, effective + datetime.timedelta(days=3)) if done else None,
                    "details": {"source": "seed_scale"},
                }
                runs.append(run)
                label = f"{kind.label} · S{i + 1:07d} · {day:%Y-%m-%d}"
                event(started_action[kind], created, "offboarding.checklistrun", run["id"], label, {"kind": kind})
                owned = self.emp_apps[i]
                if kind == ChecklistKind.LEAVE:
                    last_revoked = effective + datetime.timedelta(seconds=rng.randint(2, 40))
                    run["last_revocation_at"] = last_revoked
                    run["time_to_deprovision"] = last_revoked - effective
                    task(
                        run,
                        "disable-login",
                        "Disable the login",
                        Assignee.SYSTEM,
                        action="disable_login",
                        due=effective,
                        done=True,
                    )
                    for k, ent_id, _status in owned:
                        task(
                            run,
                            f"revoke-{ent_id}",
                            f"Revoke {app_names[k]}",
                            Assignee.SYSTEM,
                            action="revoke_entitlement",
                            params={"entitlement": ent_id},
                            due=effective,
                            done=True,
                        )
                        event(
                            AuditEvent.Action.REVOKE,
                            last_revoked,
                            "accounts.entitlement",
                            ent_id,
                            f"S{i + 1:07d} · {app_names[k]} (user)",
                            {"employee": self.emp_pk[i], "via": "leaver"},
                        )
                    task(run, "return-hardware", "Collect the hardware", Assignee.IT, due=effective, done=True)
                    task(
                        run,
                        "hand-over",
                        "Hand over approvals and files",
                        Assignee.MANAGER,
                        person=manager,
                        due=effective,
                        done=True,
                    )
                    moment = effective
                    person = f"S{i + 1:07d}"
                    event(
                        AuditEvent.Action.TERMINATE,
                        created,
                        "accounts.employee",
                        self.emp_pk[i],
                        person,
                        {"last_day": day},
                    )
                    event(AuditEvent.Action.LOGIN_DISABLED, moment, "accounts.employee", self.emp_pk[i], person, {})
                elif kind == ChecklistKind.JOIN:
                    # A pre-hire's tasks fall due from the first day: no worker runs them before.
                    task(
                        run,
                        "create-login",
                        "Create the login",
                        Assignee.SYSTEM,
                        action="create_login",
                        due=effective,
                        done=done,
                    )
                    for k, ent_id, _status in owned:
                        task(
                            run,
                            f"provision-{ent_id}",
                            f"Provision {app_names[k]}",
                            Assignee.SYSTEM,
                            action="provision_entitlement",
                            params={"entitlement": ent_id},
                            due=effective,
                            done=done,
                        )
                    task(
                        run,
                        "prepare-kit",
                        "Prepare the laptop and kit",
                        Assignee.IT,
                        due=effective - datetime.timedelta(days=1),
                        done=done,
                    )
                    task(
                        run,
                        "welcome",
                        "Welcome them on their first day",
                        Assignee.MANAGER,
                        person=manager,
                        due=effective,
                        done=done,
                    )
                else:
                    task(
                        run,
                        "review-access",
                        "Review the access for the new position",
                        Assignee.MANAGER,
                        person=manager,
                        due=effective,
                        done=True,
                    )
                    task(
                        run,
                        "adjust-access",
                        "Adjust the access",
                        Assignee.SYSTEM,
                        action="adjust_access",
                        due=effective,
                        done=True,
                    )
            self.counts["checklist runs"] = self.counts.get("checklist runs", 0) + runs_w.insert(runs)
            self.counts["tasks"] = self.counts.get("tasks", 0) + tasks_w.insert(tasks)
            with transaction.atomic():  # sealed into the audit chain under its lock, written in the same transaction
                personals = chain_seal_rows(events)
                self.counts["audit events (bulk)"] = self.counts.get("audit events (bulk)", 0) + audit_w.insert(events)
                personal_w.insert(personals)
            for rows in (runs, tasks, events):
                rows.clear()
        for inserter in (runs_w, tasks_w, audit_w):
            inserter.finish()
