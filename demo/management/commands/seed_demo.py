"""`manage.py seed_demo`: a believable demo company, Helix Logistics, with known logins.

About 300 employees in 11 departments (a tree with heads) at 6 offices on 3 continents, a
reporting line CEO → VPs → directors → managers → individual contributors, 10 roles with
birthright applications and hardware kits, 23 applications with owners, approval policies of every
kind and licenses, about 400 hardware assets in every status with a consistent check-out log,
entitlements (birthright, requested, manual; some unused for months), and access requests at every
stage, some waiting on the `manager` and `owner` logins.

Deterministic (fixed random seed; dates are relative to today). Idempotent: when the company is
already there (its CEO's employee number is the marker) nothing is written and the logins are only
printed. Everything is written in one transaction, so an interrupted run leaves nothing behind.
Rows are written in bulk with one history row each; a handful of recent changes go through the real
services (as `itadmin` / `helpdesk`) so the audit log and history show named people at work.
The lifecycle checklists come last, through the real flows: the demo checklist templates, join runs
for the first pre-hires, a mover in their grace period, a leaver whose cut-off was a few days ago
with one device back and one still out, and the people who resigned and leave in the coming weeks.

The password of every demo login is `portal-demo`. It is for a laptop demo only.
"""

import contextlib
import datetime
import logging
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    AccessRequestStatus,
    Application,
    ApprovalPolicy,
    ApprovalStep,
    ApprovalStepKind,
    ApprovalStepStatus,
    ConnectorType,
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
from accounts.services import employee_update, entitlement_grant, entitlement_revoke
from assets.models import AssetCategory, AssetCheckout, AssetModel, AssetStatus, HardwareAsset, License, RoleKitItem
from assets.services import asset_check_in, asset_check_out, asset_mark_lost
from demo.checklists import demo_templates_sync
from demo.seeding import ascii_slug, aware, bulk_change, bulk_insert, explicit_timestamps
from offboarding import flows
from offboarding import services as lifecycle
from offboarding.models import Assignee, ChecklistRun, HardwareReturn, Task, TaskStatus
from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK, groups_sync

SEED = 20260101
MARKER_EMPLOYEE_NUMBER = "P10001"  # the CEO; present ⇔ the demo company is loaded
DEMO_PASSWORD = "portal-demo"
DOMAIN = "helix.example"
LEAVER_CUT_OFF_DAYS_AGO = 3  # the demo leaver's cut-off: the end of their last day, this many days ago
REASON = "Demo data (seed_demo)"

# --- Reference data -------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Space-separated names; an underscore stands for a space inside a name ("Wei_Ling")."""
    return [w.replace("_", " ") for w in text.split()]


LOCATIONS = [
    # name, code, country, region, city, street names, postcode, phone prefix
    ("Berlin HQ", "BER-1", "DE", Region.EMEA, "Berlin", ["Torstraße", "Invalidenstraße"], "10119", "+49 30"),
    ("London", "LON-1", "GB", Region.EMEA, "London", ["Old Street", "Curtain Road"], "EC2A", "+44 20"),
    ("New York", "NYC-1", "US", Region.AMER, "New York", ["Hudson Street", "Varick Street"], "10013", "+1 212"),
    ("Toronto", "TOR-1", "CA", Region.AMER, "Toronto", ["King Street West", "Spadina Avenue"], "M5V", "+1 416"),
    ("Singapore", "SIN-1", "SG", Region.APAC, "Singapore", ["Robinson Road", "Cecil Street"], "068898", "+65"),
    ("Sydney", "SYD-1", "AU", Region.APAC, "Sydney", ["George Street", "Pitt Street", "Kent Street"], "2000", "+61 2"),
]  # fmt: skip

NAMES = {  # first names, last names per country of the office
    "DE": (
        words(
            "Lukas Anna Felix Lena Jonas Mia Paul Hannah Leon Sophie Maximilian Marie Jan Laura Tobias Katharina "
            "Niklas Julia Moritz Clara Jana Till Greta Emil"
        ),
        words(
            "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Schäfer Koch Richter Klein Wolf "
            "Neumann Schwarz Zimmermann Braun Krüger Hartmann Lange Vogel Yılmaz Kowalski"
        ),
    ),
    "GB": (
        words(
            "Oliver Amelia Harry Isla George Ava Jack Emily Charlie Grace Thomas Poppy James Freya William Ella "
            "Aisha Rohan Siobhan Callum"
        ),
        words(
            "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Evans Thomas Roberts Walker Wright "
            "Khan Hughes Okafor Murray"
        ),
    ),
    "US": (
        words(
            "Michael Jessica David Ashley Daniel Sarah Christopher Emily Matthew Olivia Andrew Madison Joshua "
            "Sofia Ryan Camila Marcus Aaliyah José Mei"
        ),
        words(
            "Garcia Johnson Martinez Rodriguez Lee Nguyen Anderson Thompson Hernandez Moore Jackson Kim Robinson "
            "Lopez Clark Lewis Young Allen Washington Cohen"
        ),
    ),
    "CA": (
        words("Liam Chloe Noah Emma Ethan Charlotte Lucas Zoé Benjamin Maya Samuel Léa Gabriel Avery Aiden Priya"),
        words("Tremblay Roy Gagnon Côté Bouchard Gauthier Morin Lavoie MacDonald Campbell Singh Wong Chen Fortin"),
    ),
    "SG": (
        words(
            "Wei_Ling Jun_Jie Hui_Min Kai_Xiang Siti Muhammad Priya Arjun Mei_Ling Zhi_Hao Nur_Aisyah Ravi Xin_Yi Hafiz"
        ),
        words("Tan Lim Lee Ng Ong Wong Goh Chua Chan Koh Teo Rahman Kumar Nair"),
    ),
    "AU": (
        words("Jack Charlotte Oliver Mia William Olivia Noah Isla Lachlan Matilda Cooper Zara Harrison Ruby"),
        words("Smith Jones Williams Brown Wilson Taylor Nguyen Kelly Ryan Murphy O'Brien Mitchell Campbell Stewart"),
    ),
}

# code, name, description
ROLES = [
    ("executive", "Executive", "Leadership team and their assistants."),
    ("engineering-manager", "Engineering Manager", "Leads an engineering team; hires and reviews access."),
    ("software-engineer", "Software Engineer", "Builds and runs Helix's platform and products."),
    ("it-engineer", "IT Engineer", "Workplace IT, identity and security."),
    ("sales", "Sales", "Account executives and sales development."),
    ("customer-success", "Customer Success", "Customer success managers and support engineers."),
    ("marketing", "Marketing", "Demand generation, product marketing, brand and content."),
    ("finance", "Finance", "Accounting, FP&A and internal audit."),
    ("people", "People & Talent", "People partners, people operations and recruiting."),
    ("legal", "Legal", "Commercial, privacy and employment counsel."),
]


@dataclass
class AppSpec:
    name: str
    description: str
    owner: str  # a key of `Plan.keyed`
    policy: str
    levels: list[str]
    sensitivity: str
    requestable: bool
    connector: str = ConnectorType.MANUAL
    config: dict = field(default_factory=dict)
    max_days: int | None = None
    # License: vendor, cost per seat per year, currency, renewal in days from today, seats / seats used
    license: tuple[str, str, str, int, float] | None = None


A = ApprovalPolicy
S = Sensitivity
APPLICATIONS = [
    AppSpec("Google Workspace", "Mail, calendar, Drive and Meet for everyone.", "it_head", A.NONE, ["user", "admin"],
            S.MEDIUM, False, license=("Google", "172.80", "USD", 140, 1.08)),
    AppSpec("Slack", "Company chat; channels per team and per customer.", "it_head", A.NONE, ["member", "admin"],
            S.LOW, False, license=("Slack", "150.00", "USD", 201, 1.10)),
    AppSpec("Zoom", "Video meetings and webinars.", "it_workplace", A.NONE, ["basic", "licensed", "admin"], S.LOW,
            True, license=("Zoom", "149.90", "USD", 9, 1.02)),
    AppSpec("Okta", "Single sign-on and MFA for every application.", "sec_lead", A.OWNER, ["user", "admin"], S.HIGH,
            False, license=("Okta", "96.00", "USD", 260, 1.05)),
    AppSpec("Corporate Directory", "The LDAP directory behind Wi-Fi, VPN and printers.", "itadmin", A.NONE, ["user"],
            S.LOW, False, connector=ConnectorType.LDAP,
            config={"url": "ldap://127.0.0.1:3389", "bind_dn": "cn=portal,dc=helix,dc=example",
                    "bind_password": "demo-only-ldap-password", "users_dn": "ou=people,dc=helix,dc=example",
                    "groups": {"user": "cn=staff,ou=groups,dc=helix,dc=example"}}),
    AppSpec("1Password", "Team password vaults.", "sec_lead", A.MANAGER, ["member", "admin"], S.MEDIUM, True,
            license=("1Password", "95.88", "USD", 77, 1.04)),
    AppSpec("Workday", "HR system: profiles, time off, compensation.", "vp_people", A.MANAGER_THEN_OWNER,
            ["employee", "manager", "hr_partner", "admin"], S.HIGH, True,
            license=("Workday", "120.00", "USD", 305, 1.10)),
    AppSpec("GitHub", "Source code, pull requests and CI.", "owner", A.MANAGER_THEN_OWNER,
            ["read", "write", "maintain", "admin"], S.MEDIUM, True, license=("GitHub", "252.00", "USD", 46, 1.15)),
    AppSpec("Jira", "Issue tracking for engineering and IT.", "owner", A.MANAGER, ["user", "admin"], S.LOW, True,
            license=("Atlassian", "93.00", "USD", 118, 1.12)),
    AppSpec("Confluence", "Team wiki and runbooks.", "owner", A.MANAGER, ["viewer", "editor", "admin"], S.LOW, True,
            license=("Atlassian", "68.00", "USD", 118, 1.12)),
    AppSpec("Datadog", "Metrics, logs and on-call dashboards.", "owner", A.OWNER, ["read_only", "standard", "admin"],
            S.MEDIUM, True, license=("Datadog", "276.00", "USD", 163, 1.20)),
    AppSpec("AWS Console", "Production and staging AWS accounts (via IAM Identity Center).", "plat_director",
            A.MANAGER_THEN_OWNER, ["read_only", "developer", "admin"], S.HIGH, True, max_days=90),
    AppSpec("Helix Ops Console", "Internal tool: shipments, carriers and exceptions.", "prod_director", A.MANAGER,
            ["viewer", "operator", "admin"], S.MEDIUM, True, connector=ConnectorType.WEBHOOK,
            config={"url": "http://127.0.0.1:8001/hooks/portal", "secret": "demo-only-webhook-secret-0123456789"}),
    AppSpec("Salesforce", "CRM: accounts, opportunities, forecasts.", "vp_sales", A.MANAGER_THEN_OWNER,
            ["user", "admin"], S.MEDIUM, True, license=("Salesforce", "1980.00", "USD", 21, 1.06)),
    AppSpec("Gong", "Call recording and deal insights.", "vp_sales", A.MANAGER, ["user", "admin"], S.MEDIUM, True,
            license=("Gong", "1200.00", "USD", 233, 1.00)),
    AppSpec("HubSpot Marketing", "Campaigns, landing pages and lead scoring.", "vp_mkt", A.MANAGER,
            ["viewer", "marketer", "admin"], S.LOW, True, license=("HubSpot", "540.00", "EUR", 96, 1.25)),
    AppSpec("Zendesk", "Customer support tickets and help centre.", "cs_head", A.OWNER,
            ["light_agent", "agent", "admin"], S.MEDIUM, True, license=("Zendesk", "660.00", "EUR", 28, 0.85)),
    AppSpec("NetSuite", "ERP: general ledger, payables, receivables.", "controller", A.MANAGER_THEN_OWNER,
            ["viewer", "accountant", "admin"], S.HIGH, True, max_days=365,
            license=("Oracle NetSuite", "1188.00", "USD", 182, 1.10)),
    AppSpec("Tableau", "Dashboards on the data warehouse.", "fpa_lead", A.MANAGER, ["viewer", "explorer", "creator"],
            S.MEDIUM, True, license=("Salesforce (Tableau)", "420.00", "USD", 350, 1.30)),
    AppSpec("Figma", "Design files and prototypes.", "vp_mkt", A.MANAGER, ["viewer", "editor"], S.LOW, True,
            license=("Figma", "540.00", "EUR", 35, 1.40)),
    AppSpec("Miro", "Whiteboards for workshops and planning.", "vp_mkt", A.NONE, ["member", "admin"], S.LOW, True,
            license=("Miro", "96.00", "EUR", 64, 1.50)),
    AppSpec("DocuSign", "Contract signatures.", "gc", A.OWNER, ["signer", "sender", "admin"], S.MEDIUM, True,
            license=("DocuSign", "480.00", "GBP", 270, 1.10)),
    AppSpec("Greenhouse", "Recruiting: candidates, interviews, offers (candidate personal data).", "talent_lead",
            A.MANAGER, ["interviewer", "recruiter", "admin"], S.HIGH, True,
            license=("Greenhouse", "300.00", "USD", 15, 1.05)),
]  # fmt: skip

COMMON_BIRTHRIGHTS = [
    ("Google Workspace", "user"),
    ("Slack", "member"),
    ("Zoom", "licensed"),
    ("Okta", "user"),
    ("Corporate Directory", "user"),
    ("1Password", "member"),
    ("Workday", "employee"),
]
BIRTHRIGHTS = {
    "executive": [("Workday", "manager"), ("Tableau", "viewer"), ("DocuSign", "signer")],
    "engineering-manager": [
        ("Workday", "manager"),
        ("GitHub", "maintain"),
        ("Jira", "user"),
        ("Confluence", "editor"),
        ("Datadog", "standard"),
        ("Greenhouse", "interviewer"),
    ],
    "software-engineer": [("GitHub", "write"), ("Jira", "user"), ("Confluence", "editor"), ("Datadog", "read_only")],
    "it-engineer": [("Okta", "admin"), ("Jira", "user"), ("Confluence", "editor")],
    "sales": [("Salesforce", "user"), ("Gong", "user"), ("DocuSign", "sender")],
    "customer-success": [("Salesforce", "user"), ("Zendesk", "agent"), ("Confluence", "viewer")],
    "marketing": [("HubSpot Marketing", "marketer"), ("Figma", "editor"), ("Miro", "member")],
    "finance": [("NetSuite", "accountant"), ("Tableau", "explorer")],
    "people": [("Workday", "hr_partner"), ("Greenhouse", "recruiter"), ("DocuSign", "sender")],
    "legal": [("DocuSign", "sender"), ("Confluence", "viewer")],
}

# manufacturer, name, category, default cost, serial prefix, warranty years
ASSET_MODELS = [
    ("Apple", "MacBook Pro 14 (M3 Pro)", AssetCategory.LAPTOP, "2399.00", "C02", 3),
    ("Apple", "MacBook Air 13 (M3)", AssetCategory.LAPTOP, "1299.00", "FVF", 3),
    ("Lenovo", "ThinkPad X1 Carbon Gen 12", AssetCategory.LAPTOP, "1899.00", "PF", 3),
    ("Dell", "Latitude 7420", AssetCategory.LAPTOP, "1499.00", "DL", 3),
    ("Apple", "iPhone 15", AssetCategory.PHONE, "899.00", "F2L", 1),
    ("Apple", "iPhone 15 Pro", AssetCategory.PHONE, "1199.00", "G6T", 1),
    ("Google", "Pixel 8", AssetCategory.PHONE, "699.00", "GP8", 2),
    ("Dell", "UltraSharp U2723QE", AssetCategory.MONITOR, "579.00", "CN0", 3),
    ("LG", "27UK850-W", AssetCategory.MONITOR, "449.00", "LG7", 2),
    ("Yubico", "YubiKey 5 NFC", AssetCategory.TOKEN, "55.00", "YK", 1),
    ("HID", "iCLASS SE badge", AssetCategory.BADGE, "12.00", "HID", 1),
]
MBP, AIR, X1, LATITUDE, IPHONE, IPHONE_PRO, PIXEL, U27, LG27, YUBIKEY, BADGE = (f"{m[0]} {m[1]}" for m in ASSET_MODELS)
KITS = {
    "executive": [(MBP, 1), (IPHONE_PRO, 1), (YUBIKEY, 1)],
    "engineering-manager": [(MBP, 1), (U27, 1), (YUBIKEY, 1)],
    "software-engineer": [(MBP, 1), (U27, 2), (YUBIKEY, 1)],
    "it-engineer": [(MBP, 1), (U27, 1), (YUBIKEY, 2), (PIXEL, 1)],
    "sales": [(AIR, 1), (IPHONE, 1)],
    "customer-success": [(AIR, 1), (LG27, 1)],
    "marketing": [(AIR, 1), (LG27, 1)],
    "finance": [(X1, 1), (U27, 1)],
    "people": [(X1, 1), (LG27, 1)],
    "legal": [(X1, 1)],
}
LAPTOP_FOR_ROLE = {role: kit[0][0] for role, kit in KITS.items()}


# --- The organisation -----------------------------------------------------------------------


@dataclass
class Team:
    manager_title: str | None  # None: the ICs report to the department head
    size: int
    titles: list[str]
    role: str
    locations: list[str]
    manager_key: str | None = None


@dataclass
class Dept:
    code: str
    name: str
    parent: str | None
    cost_center: str
    head_title: str
    head_role: str
    head_location: str
    head_key: str | None
    teams: list[Team]


SWE = ["Software Engineer", "Senior Software Engineer", "Staff Software Engineer", "Software Engineer II"]
ORG = [
    Dept("EXEC", "Executive", None, "CC-100", "Chief Executive Officer", "executive", "BER-1", "ceo",
         [Team(None, 2, ["Executive Assistant", "Chief of Staff"], "executive", ["BER-1"])]),
    Dept("ENG", "Engineering", "EXEC", "CC-200", "VP Engineering", "executive", "BER-1", "vp_eng", []),
    Dept("ENG-PLAT", "Platform Engineering", "ENG", "CC-210", "Director of Platform Engineering",
         "engineering-manager", "BER-1", "plat_director", [
             Team("Engineering Manager, Infrastructure", 8, SWE + ["Site Reliability Engineer"], "software-engineer",
                  ["BER-1", "LON-1"]),
             Team("Engineering Manager, Developer Experience", 7, SWE, "software-engineer", ["BER-1", "TOR-1"],
                  manager_key="owner"),
             Team("Engineering Manager, Data Platform", 8, SWE + ["Data Engineer"], "software-engineer",
                  ["TOR-1", "BER-1"]),
             Team("Engineering Manager, Security Engineering", 6, SWE + ["Security Engineer"], "software-engineer",
                  ["LON-1"]),
         ]),
    Dept("ENG-PROD", "Product Engineering", "ENG", "CC-220", "Director of Product Engineering",
         "engineering-manager", "LON-1", "prod_director", [
             Team("Engineering Manager, Shipments", 9, SWE, "software-engineer", ["BER-1"], manager_key="manager"),
             Team("Engineering Manager, Billing", 8, SWE, "software-engineer", ["BER-1", "LON-1"]),
             Team("Engineering Manager, Mobile", 9, SWE + ["Mobile Engineer"], "software-engineer", ["TOR-1"]),
             Team("Engineering Manager, Customer Portal", 9, SWE + ["Frontend Engineer"], "software-engineer",
                  ["LON-1", "BER-1"]),
             Team("Engineering Manager, Routing", 8, SWE, "software-engineer", ["SIN-1", "SYD-1"]),
             Team("Engineering Manager, Integrations", 8, SWE, "software-engineer", ["TOR-1", "NYC-1"]),
             Team("Engineering Manager, Product Design", 6, ["Product Designer", "UX Researcher"], "software-engineer",
                  ["BER-1", "LON-1"]),
         ]),
    Dept("IT", "IT & Security", "EXEC", "CC-300", "Head of IT", "it-engineer", "BER-1", "it_head", [
        Team("IT Manager, Workplace", 7, ["IT Support Specialist", "IT Support Engineer"], "it-engineer",
             ["BER-1", "NYC-1", "SIN-1", "LON-1"], manager_key="it_workplace"),
        Team("Security & Identity Lead", 5, ["Identity Engineer", "Security Analyst"], "it-engineer",
             ["BER-1", "LON-1"], manager_key="sec_lead"),
    ]),
    Dept("SALES", "Sales", "EXEC", "CC-400", "VP Sales", "executive", "NYC-1", "vp_sales", [
        Team("Sales Manager, Enterprise EMEA", 9, ["Account Executive", "Senior Account Executive"], "sales",
             ["LON-1", "BER-1"]),
        Team("Sales Manager, Mid-Market EMEA", 9, ["Account Executive"], "sales", ["BER-1"]),
        Team("Sales Manager, Enterprise North America", 10, ["Account Executive", "Senior Account Executive"],
             "sales", ["NYC-1"]),
        Team("Sales Manager, Mid-Market North America", 9, ["Account Executive"], "sales", ["NYC-1", "TOR-1"]),
        Team("Sales Manager, APAC", 9, ["Account Executive", "Senior Account Executive"], "sales",
             ["SIN-1", "SYD-1"]),
        Team("Sales Development Manager", 10, ["Sales Development Representative"], "sales", ["NYC-1", "LON-1"]),
    ]),
    Dept("CS", "Customer Success", "SALES", "CC-410", "Director of Customer Success", "customer-success", "LON-1",
         "cs_head", [
             Team("Customer Success Lead, EMEA", 10, ["Customer Success Manager", "Support Engineer"],
                  "customer-success", ["LON-1", "BER-1"]),
             Team("Customer Success Lead, Americas", 10, ["Customer Success Manager", "Support Engineer"],
                  "customer-success", ["NYC-1", "TOR-1"]),
             Team("Customer Success Lead, APAC", 8, ["Customer Success Manager", "Support Engineer"],
                  "customer-success", ["SYD-1", "SIN-1"]),
         ]),
    Dept("MKT", "Marketing", "EXEC", "CC-500", "VP Marketing", "executive", "NYC-1", "vp_mkt", [
        Team("Demand Generation Manager", 8, ["Demand Generation Specialist", "Marketing Operations Analyst"],
             "marketing", ["NYC-1", "LON-1"]),
        Team("Product Marketing Manager", 7, ["Product Marketing Specialist"], "marketing", ["NYC-1", "BER-1"]),
        Team("Brand & Content Lead", 8, ["Content Writer", "Brand Designer", "Social Media Specialist"],
             "marketing", ["LON-1", "SYD-1"]),
    ]),
    Dept("FIN", "Finance", "EXEC", "CC-600", "Chief Financial Officer", "executive", "BER-1", "cfo", [
        Team("Financial Controller", 7, ["Accountant", "Senior Accountant", "Payroll Specialist"], "finance",
             ["BER-1", "NYC-1"], manager_key="controller"),
        Team("FP&A Manager", 5, ["Financial Analyst"], "finance", ["BER-1", "LON-1"], manager_key="fpa_lead"),
        Team("Head of Internal Audit", 2, ["Internal Auditor"], "finance", ["BER-1"]),
    ]),
    Dept("PEOPLE", "People", "EXEC", "CC-700", "VP People", "executive", "BER-1", "vp_people", [
        Team("Head of People Partnering", 6, ["People Partner", "People Operations Specialist"], "people",
             ["BER-1", "NYC-1", "SIN-1"]),
        Team("Talent Acquisition Lead", 8, ["Recruiter", "Technical Recruiter", "Sourcer"], "people",
             ["BER-1", "LON-1", "NYC-1"], manager_key="talent_lead"),
    ]),
    Dept("LEGAL", "Legal", "EXEC", "CC-800", "General Counsel", "legal", "LON-1", "gc", [
        Team(None, 5, ["Legal Counsel", "Privacy Counsel", "Paralegal"], "legal", ["LON-1", "NYC-1", "BER-1"]),
    ]),
]  # fmt: skip

# The logins: username → (how to find their employee in the plan, staff group or None, what they show)
LOGINS = {
    "itadmin": ("itadmin", IT_ADMIN, "IT admin (staff): admin, full rights in Portal's apps"),
    "helpdesk": ("helpdesk", IT_HELPDESK, "IT helpdesk (staff): day-to-day changes in the admin"),
    "auditor": ("auditor", AUDITOR, "Auditor (staff): read-only admin, history and exports"),
    "manager": ("manager", None, "Manager: a team of engineers; access requests wait for their approval"),
    "owner": ("owner", None, "Application owner: GitHub, Jira, Confluence, Datadog; owner approvals waiting"),
    "employee": ("employee", None, "Employee: reports to `manager`, holds hardware and access"),
}
# Fixed individual contributors who get a login: (team manager key or department code, title)
LOGIN_ICS = {
    "itadmin": ("sec_lead", "IT Systems Administrator"),
    "helpdesk": ("it_workplace", "IT Support Specialist"),
    "auditor": ("FIN:Head of Internal Audit", "Internal Auditor"),
    "employee": ("manager", "Senior Software Engineer"),
}


@dataclass
class Person:
    index: int
    first: str
    last: str
    title: str
    dept: str
    location: str
    role: str | None
    manager: "Person | None"
    status: str = EmployeeStatus.ACTIVE
    employment_type: str = EmploymentType.FULL_TIME
    start: datetime.date | None = None
    end: datetime.date | None = None
    key: str | None = None
    obj: Employee | None = None

    @property
    def depth(self) -> int:
        return 0 if self.manager is None else self.manager.depth + 1

    @property
    def holds_things(self) -> bool:
        return self.status in (EmployeeStatus.ACTIVE, EmployeeStatus.LEAVE_OF_ABSENCE)


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


class Command(BaseCommand):
    help = "Load the Helix Logistics demo company with known logins (idempotent; password: portal-demo)."

    def add_arguments(self, parser):
        parser.add_argument("--quiet-logins", action="store_true", help="Do not print the table of logins.")

    def handle(self, *args, **options):
        started = time.monotonic()
        if Employee.objects.filter(employee_number=MARKER_EMPLOYEE_NUMBER).exists():
            self.stdout.write("The demo company is already loaded; nothing to do.")
        else:
            leftovers = self._leftovers()
            if leftovers:
                raise CommandError(
                    f"The demo company's marker ({MARKER_EMPLOYEE_NUMBER}) is missing, but some of its rows exist "
                    f"({leftovers}). Someone edited or partly deleted the demo data; load it into a fresh database "
                    "(e.g. `make clean-db`)."
                )
            builder = DemoBuilder(stdout=self.stdout)
            with queue_log_quiet(), transaction.atomic():
                counts = builder.build()
            summary = ", ".join(f"{n} {label}" for label, n in counts.items())
            self.stdout.write(self.style.SUCCESS(f"Loaded the demo company in {time.monotonic() - started:.1f}s: "))
            self.stdout.write(f"  {summary}")
            for note in builder.notes:
                self.stdout.write(f"  {note}")
        if not options["quiet_logins"]:
            self._print_logins()

    def _leftovers(self) -> str:
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

    def _print_logins(self):
        users = {u.username: u for u in get_user_model().objects.filter(username__in=LOGINS)}
        employees = {e.user_id: e for e in Employee.objects.filter(user__username__in=LOGINS)}
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}; for a laptop demo only):")
        for username, (_key, _group, what) in LOGINS.items():
            user = users.get(username)
            if user is None:
                continue
            person = employees.get(user.pk)
            who = f"{person.full_name}, {person.title}" if person else ""
            where = "/admin/" if user.is_staff else "/"
            self.stdout.write(f"  {username:<9} {where:<8} {what} — {who}")


class DemoBuilder:
    """Plans the company in memory (deterministically), then writes it in bulk."""

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

    # --- helpers -------------------------------------------------------------------------

    def days_ago(self, low: int, high: int) -> datetime.date:
        return self.today - datetime.timedelta(days=self.rng.randint(low, high))

    def at(self, day: datetime.date, hour_low: int = 8, hour_high: int = 18) -> datetime.datetime:
        return aware(day, self.rng.randint(hour_low, hour_high), self.rng.randint(0, 59))

    def name_for(self, location_code: str) -> tuple[str, str]:
        country = next(loc[2] for loc in LOCATIONS if loc[1] == location_code)
        firsts, lasts = NAMES[country]
        for _ in range(50):
            pair = (self.rng.choice(firsts), self.rng.choice(lasts))
            if pair not in self.used_names:
                break
        self.used_names.add(pair)
        return pair

    def email_for(self, first: str, last: str) -> str:
        base = ascii_slug(first, last)
        candidate, n = f"{base}@{DOMAIN}", 2
        while candidate in self.used_emails:
            candidate, n = f"{base}{n}@{DOMAIN}", n + 1
        self.used_emails.add(candidate)
        return candidate

    def add_person(self, *, title, dept, location, role, manager, key=None) -> Person:
        first, last = self.name_for(location)
        person = Person(len(self.people), first, last, title, dept, location, role, manager, key=key)
        self.people.append(person)
        if key:
            self.keyed[key] = person
        return person

    # --- plan --------------------------------------------------------------------------------

    def plan_people(self):
        heads: dict[str, Person] = {}
        login_slots = {slot: login for login, (slot, _title) in LOGIN_ICS.items()}
        for dept in ORG:
            manager = heads[dept.parent] if dept.parent else None
            head = self.add_person(
                title=dept.head_title,
                dept=dept.code,
                location=dept.head_location,
                role=dept.head_role,
                manager=manager,
                key=dept.head_key,
            )
            heads[dept.code] = head
            for team in dept.teams:
                lead = head
                if team.manager_title:
                    lead = self.add_person(
                        title=team.manager_title,
                        dept=dept.code,
                        location=team.locations[0],
                        role="engineering-manager" if team.role == "software-engineer" else team.role,
                        manager=head,
                        key=team.manager_key,
                    )
                team_slot = team.manager_key or f"{dept.code}:{team.manager_title}"
                for i in range(team.size):
                    login = login_slots.get(team_slot) if i == 0 else None
                    title = LOGIN_ICS[login][1] if login else self.rng.choice(team.titles)
                    location = team.locations[0] if i < 2 else self.rng.choice(team.locations)
                    self.add_person(
                        title=title, dept=dept.code, location=location, role=team.role, manager=lead, key=login
                    )
        # New joiners: pre-hires with start dates in the coming weeks, spread over bigger teams.
        lead_teams = {
            t.manager_title: t for d in ORG for t in d.teams if d.code in ("ENG-PROD", "ENG-PLAT", "SALES", "CS")
        }
        leads = [p for p in self.people if p.title in lead_teams]
        for lead in self.rng.sample(leads, 10):
            ic_team = lead_teams[lead.title]
            joiner = self.add_person(
                title=self.rng.choice(ic_team.titles),
                dept=lead.dept,
                location=self.rng.choice(ic_team.locations),
                role=ic_team.role,
                manager=lead,
            )
            joiner.status = EmployeeStatus.PRE_HIRE
            joiner.start = self.today + datetime.timedelta(days=self.rng.randint(5, 45))

    def plan_statuses(self):
        managers = {p.manager.index for p in self.people if p.manager}
        protected = managers | {p.index for p in self.people if p.key}
        for p in self.people:
            if p.status == EmployeeStatus.PRE_HIRE:
                continue
            # Leaders joined earlier; the `manager` and `employee` logins have a few years' history.
            earliest = 3600 if p.index in managers else 2600
            p.start = self.days_ago(120, earliest)
            if p.index in protected:
                continue
            roll = self.rng.random()
            if roll < 0.07:
                p.status = EmployeeStatus.TERMINATED
                p.end = self.days_ago(2, 200)
                if p.end <= p.start:
                    p.start = p.end - datetime.timedelta(days=self.rng.randint(200, 900))
            elif roll < 0.09:
                p.status = EmployeeStatus.LEAVE_OF_ABSENCE
            elif roll < 0.11:
                p.end = self.today + datetime.timedelta(days=self.rng.randint(5, 40))  # resigned, leaving soon
            kind = self.rng.random()
            if kind < 0.05:
                p.employment_type = EmploymentType.CONTRACTOR
            elif kind < 0.10:
                p.employment_type = EmploymentType.PART_TIME
            elif kind < 0.12 and p.status == EmployeeStatus.ACTIVE:
                p.employment_type = EmploymentType.INTERN
                p.start = self.days_ago(20, 100)
                p.end = p.end or self.today + datetime.timedelta(days=self.rng.randint(60, 150))

    # --- write -------------------------------------------------------------------------------

    def build(self) -> dict[str, int]:
        self.groups = groups_sync()
        self.plan_people()
        self.plan_statuses()
        self.write_reference_data()
        self.write_people()
        self.write_users()
        self.write_applications()
        self.write_entitlements()
        self.write_licenses()
        self.write_assets()
        self.write_requests()
        self.recent_activity()
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

    def write_reference_data(self):
        self.locations = {
            loc.code: loc
            for loc in bulk_insert(
                Location,
                [Location(name=n, code=c, country=cc, region=r, city=city) for n, c, cc, r, city, *_ in LOCATIONS],
                reason=REASON,
            )
        }
        self.departments = {}
        for level in (0, 1, 2):
            batch = []
            for dept in ORG:
                depth = (
                    0 if dept.parent is None else 1 + (next(d for d in ORG if d.code == dept.parent).parent is not None)
                )
                if depth == level:
                    batch.append(
                        Department(
                            name=dept.name,
                            code=dept.code,
                            cost_center=dept.cost_center,
                            parent=self.departments.get(dept.parent),
                        )
                    )
            for obj in bulk_insert(Department, batch, reason=REASON):
                self.departments[obj.code] = obj
        self.roles = {
            r.code: r
            for r in bulk_insert(Role, [Role(code=c, name=n, description=d) for c, n, d in ROLES], reason=REASON)
        }
        self.asset_models = {
            f"{m.manufacturer} {m.name}": m
            for m in bulk_insert(
                AssetModel,
                [
                    AssetModel(manufacturer=mf, name=n, category=cat, default_cost=Decimal(cost))
                    for mf, n, cat, cost, *_ in ASSET_MODELS
                ],  # noqa: E501
                reason=REASON,
            )
        }
        self.model_specs = {f"{m[0]} {m[1]}": m for m in ASSET_MODELS}

    def write_people(self):
        location_info = {loc[1]: loc for loc in LOCATIONS}
        by_depth: dict[int, list[Person]] = {}
        for p in self.people:
            by_depth.setdefault(p.depth, []).append(p)
        with explicit_timestamps((Employee, "created_at"), (Employee, "updated_at")):
            for depth in sorted(by_depth):
                objs = []
                for p in by_depth[depth]:
                    info = location_info[p.location]
                    email = self.email_for(p.first, p.last)
                    has_personal = self.rng.random() < 0.8
                    created = self.at(p.start - datetime.timedelta(days=self.rng.randint(10, 40)))
                    obj = Employee(
                        employee_number=f"P{10001 + p.index}",
                        first_name=p.first,
                        last_name=p.last,
                        work_email=email,
                        personal_email=f"{ascii_slug(p.first, p.last, sep='')}{self.rng.randint(1, 99)}@mail.example"
                        if has_personal
                        else "",
                        personal_phone=f"{info[7]} {self.rng.randint(1000000, 9999999)}" if has_personal else "",
                        home_address=f"{self.rng.choice(info[5])} {self.rng.randint(1, 180)}, {info[6]} {info[4]}"
                        if has_personal
                        else "",
                        title=p.title,
                        department=self.departments[p.dept],
                        location=self.locations[p.location],
                        manager=p.manager.obj if p.manager else None,
                        role=self.roles[p.role] if p.role else None,
                        employment_type=p.employment_type,
                        status=p.status,
                        start_date=p.start,
                        end_date=p.end,
                        created_at=created,
                        updated_at=created,
                    )
                    obj._history_date = created
                    p.obj = obj
                    objs.append(obj)
                bulk_insert(Employee, objs, reason=REASON)
        # Department heads, now that the people exist.
        heads = []
        for dept in ORG:
            d = self.departments[dept.code]
            d.head = self.keyed[dept.head_key].obj if dept.head_key else None
            heads.append(d)
        bulk_change(Department, heads, ["head"], reason=REASON)

    def write_users(self):
        User = get_user_model()
        password = make_password(DEMO_PASSWORD)  # hashed once, shared by the demo logins
        self.users = {}
        for username, (key, group, _what) in LOGINS.items():
            person = self.keyed[key]
            user = User.objects.filter(username=username).first() or User(username=username)
            user.first_name, user.last_name = person.first, person.last
            user.email = person.obj.work_email
            user.is_staff = group is not None
            user.is_superuser = False
            user.is_active = True
            user.password = password
            user.save()
            if group:
                user.groups.add(self.groups[group])
            self.users[username] = user
            person.obj.user = user
        bulk_change(Employee, [self.keyed[k].obj for k, *_ in LOGINS.values()], ["user"], reason=REASON)

    def write_applications(self):
        apps = []
        for spec in APPLICATIONS:
            slug = ascii_slug(spec.name, sep="-").replace(" ", "-")
            apps.append(
                Application(
                    name=spec.name,
                    description=spec.description,
                    owner=self.keyed[spec.owner].obj,
                    connector=spec.connector,
                    connector_config=spec.config,
                    access_levels=spec.levels,
                    approval_policy=spec.policy,
                    requestable=spec.requestable,
                    sensitivity=spec.sensitivity,
                    max_access_days=spec.max_days,
                    knowledge_base_url=f"https://kb.{DOMAIN}/apps/{slug}",
                )
            )
        self.apps = {a.name: a for a in bulk_insert(Application, apps, reason=REASON)}
        self.specs = {s.name: s for s in APPLICATIONS}
        birthrights, kits = [], []
        for code, role in self.roles.items():
            levels = dict(COMMON_BIRTHRIGHTS)
            levels.update(dict(BIRTHRIGHTS[code]))
            birthrights += [
                RoleApplication(role=role, application=self.apps[a], access_level=lv) for a, lv in levels.items()
            ]
            kits += [RoleKitItem(role=role, asset_model=self.asset_models[m], quantity=q) for m, q in KITS[code]]
        bulk_insert(RoleApplication, birthrights, reason=REASON)
        bulk_insert(RoleKitItem, kits, reason=REASON)
        self.birthrights = {code: {**dict(COMMON_BIRTHRIGHTS), **dict(BIRTHRIGHTS[code])} for code in self.roles}

    def entitlement(self, p: Person, app: str, level: str, source: str, granted: datetime.datetime) -> Entitlement:
        status, revoked_at, last_used = EntitlementStatus.ACTIVE, None, None
        if p.status == EmployeeStatus.TERMINATED:
            status, revoked_at = EntitlementStatus.REVOKED, aware(p.end, 18)
            last_used = aware(p.end, self.rng.randint(9, 17))
        elif p.status == EmployeeStatus.LEAVE_OF_ABSENCE:
            last_used = self.at(self.days_ago(60, 150))
        elif self.rng.random() < 0.07:
            last_used = self.at(self.days_ago(95, 320))  # unused for months
        elif self.rng.random() < 0.9:
            last_used = self.at(self.days_ago(0, 20))
        if last_used is not None:
            last_used = max(granted + datetime.timedelta(hours=1), last_used)
        expires = None
        max_days = self.specs[app].max_days
        if max_days and source == EntitlementSource.REQUEST and status == EntitlementStatus.ACTIVE:
            # Time-bound: renewed every max_days; some run out in the next two weeks.
            expires = self.now + datetime.timedelta(days=self.rng.randint(3, max_days))
            granted = min(granted, expires - datetime.timedelta(days=max_days))
        ent = Entitlement(
            employee=p.obj,
            application=self.apps[app],
            level=level,
            source=source,
            status=status,
            granted_at=granted,
            revoked_at=revoked_at,
            expires_at=expires,
            last_used_at=last_used,
            external_id=f"{ascii_slug(app, sep='-')}:{p.obj.work_email.split('@')[0]}",
        )
        ent._history_date = granted
        return ent

    def write_entitlements(self):
        ents: list[Entitlement] = []
        self.extras: list[tuple[Person, Entitlement]] = []  # requested ones get an approved AccessRequest
        requestable = [s.name for s in APPLICATIONS if s.requestable]
        self.held: dict[int, set[str]] = {}
        for p in self.people:
            held = self.held.setdefault(p.index, set())
            if p.status == EmployeeStatus.PRE_HIRE or not p.role:
                continue
            granted = self.at(p.start, 8, 11)
            for app, level in self.birthrights[p.role].items():
                ents.append(self.entitlement(p, app, level, EntitlementSource.BIRTHRIGHT, granted))
                held.add(app)
            wanted = 2 if p.key == "employee" else (self.rng.choice([0, 0, 1, 1, 2]) if self.rng.random() < 0.45 else 0)
            options = [a for a in requestable if a not in held]
            for app in self.rng.sample(options, wanted):
                source = self.rng.choices(
                    [EntitlementSource.REQUEST, EntitlementSource.MANUAL, EntitlementSource.IMPORT], [6, 3, 1]
                )[0]
                levels = self.specs[app].levels
                level = levels[1] if app == "AWS Console" else levels[0]
                when = self.at(self.days_ago(3, max(4, (self.today - p.start).days)))
                if p.end and when.date() > p.end:
                    when = self.at(p.end - datetime.timedelta(days=self.rng.randint(1, 60)))
                ent = self.entitlement(p, app, level, source, max(when, granted))
                ents.append(ent)
                held.add(app)
                if source == EntitlementSource.REQUEST:
                    self.extras.append((p, ent))
        # The `employee` login: one of their extra apps has not been used for half a year.
        employee_extra = [e for q, e in self.extras if q.key == "employee"] or [
            e for e in ents if e.employee is self.keyed["employee"].obj and e.source != EntitlementSource.BIRTHRIGHT
        ]
        if employee_extra:
            employee_extra[0].last_used_at = self.at(self.days_ago(170, 190))
        bulk_insert(Entitlement, ents, reason=REASON)
        self.entitlements = ents

    def write_licenses(self):
        used: dict[str, int] = {}
        for e in self.entitlements:
            if e.status == EntitlementStatus.ACTIVE:
                used[e.application.name] = used.get(e.application.name, 0) + 1
        licenses = []
        for n, spec in enumerate(APPLICATIONS, start=1):
            if not spec.license:
                continue
            vendor, cost, currency, renewal_in, ratio = spec.license
            renewal = self.today + datetime.timedelta(days=renewal_in)
            seats = max(5, int(round(used.get(spec.name, 0) * ratio / 5.0)) * 5)
            licenses.append(
                License(
                    application=self.apps[spec.name],
                    vendor=vendor,
                    contract_number=f"HLX-{renewal.year - 1}-{n:03d}",
                    seats_purchased=seats,
                    cost_per_seat=Decimal(cost),
                    currency=currency,
                    start_date=renewal - datetime.timedelta(days=365),
                    renewal_date=renewal,
                    notes="Auto-renews unless cancelled 30 days before renewal." if renewal_in < 60 else "",
                )
            )
        bulk_insert(License, licenses, reason=REASON)

    # --- hardware ------------------------------------------------------------------------------

    def new_asset(
        self, model_name, status, *, holder: Person | None, location: str, age_days=(30, 1200), not_after=None
    ):
        _mf, _name, _category, cost, prefix, warranty_years = self.model_specs[model_name]
        self.asset_seq += 1
        purchased = self.days_ago(*age_days)
        if not_after is not None:
            purchased = min(purchased, not_after - datetime.timedelta(days=self.rng.randint(1, 20)))
        serial = ""
        while not serial or serial in self.serials:
            serial = prefix + "".join(self.rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=12 - len(prefix)))
        self.serials.add(serial)
        asset = HardwareAsset(
            asset_tag=f"HLX-{self.asset_seq:05d}",
            serial=serial,
            model=self.asset_models[model_name],
            status=status,
            assigned_to=holder.obj if holder else None,
            location=self.locations[location],
            purchase_date=purchased,
            purchase_cost=(Decimal(cost) * Decimal(self.rng.choice(["0.92", "0.95", "1.00", "1.00", "1.04"]))).quantize(
                Decimal("0.01")
            ),
            warranty_end=purchased + datetime.timedelta(days=365 * warranty_years),
        )
        asset._history_date = aware(purchased, 12)
        self.assets.append(asset)
        return asset

    def checkout(self, asset, holder: Person, *, start=None, end=None, condition="", note="", accepted=True):
        day = max(asset.purchase_date, start or holder.start or asset.purchase_date)
        out = self.at(day + datetime.timedelta(days=self.rng.randint(0, 2)), 9, 12)
        if out.date() > self.today:
            out = self.at(self.today, 8, 9)
        checked_in = None
        if end is not None:
            checked_in = max(out + datetime.timedelta(hours=1), self.at(end, 13, 17))
        row = AssetCheckout(
            asset=asset,
            employee=holder.obj,
            checked_out_at=out,
            checked_out_by=self.rng.choice([self.users["itadmin"], self.users["helpdesk"]]),
            terms_accepted_at=out + datetime.timedelta(hours=self.rng.randint(1, 30)) if accepted else None,
            checked_in_at=checked_in,
            checked_in_by=self.users["helpdesk"] if checked_in else None,
            condition_on_return=condition,
            note=note,
        )
        row._history_date = out
        self.checkouts.append(row)
        return row

    def write_assets(self):
        self.assets: list[HardwareAsset] = []
        self.checkouts: list[AssetCheckout] = []
        self.serials: set[str] = set()
        self.asset_seq = 0
        rng = self.rng
        terminated = [p for p in self.people if p.status == EmployeeStatus.TERMINATED]
        active = [p for p in self.people if p.holds_things]
        # Laptops for everyone who works here; second items for those whose work needs them.
        for p in active:
            laptop = LAPTOP_FOR_ROLE.get(p.role, AIR)
            asset = self.new_asset(
                laptop, AssetStatus.ASSIGNED, holder=p, location=p.location, age_days=(20, 1100), not_after=p.start
            )
            leaving = p.end is not None and p.employment_type != EmploymentType.INTERN
            self.checkout(asset, p, accepted=rng.random() < 0.93 or p.key == "manager")
            if leaving:
                asset.status = AssetStatus.PENDING_RETURN
            extra = []
            if p.key == "employee":
                extra = [U27, YUBIKEY]
            elif p.role in ("executive",) or p.title.startswith("Sales Manager"):
                extra = [IPHONE_PRO if p.role == "executive" else IPHONE]
            elif p.role == "it-engineer" or p.dept == "ENG-PLAT" and rng.random() < 0.5:
                extra = [YUBIKEY]
            elif p.role == "software-engineer" and rng.random() < 0.15:
                extra = [U27]
            for model_name in extra:
                item = self.new_asset(
                    model_name, AssetStatus.ASSIGNED, holder=p, location=p.location, age_days=(20, 700)
                )
                self.checkout(item, p, accepted=not (p.key == "employee" and model_name == YUBIKEY))
                if leaving:
                    item.status = AssetStatus.PENDING_RETURN
        # Leavers: about half have not returned their laptop yet; the others returned it to stock.
        for p in terminated:
            laptop = LAPTOP_FOR_ROLE.get(p.role, AIR)
            if rng.random() < 0.5:
                asset = self.new_asset(
                    laptop, AssetStatus.PENDING_RETURN, holder=p, location=p.location, not_after=p.start
                )
                self.checkout(asset, p)
                asset.notes = "Leaver: return kit sent, waiting for the courier."
            else:
                asset = self.new_asset(
                    laptop, AssetStatus.IN_STOCK, holder=None, location=p.location, not_after=p.start
                )
                self.checkout(asset, p, end=p.end, condition="good", note="Returned at exit interview.")
        # Stock, shipments to new joiners, repairs, retired and lost devices.
        stock_models = [MBP, MBP, AIR, AIR, X1, U27, U27, LG27, IPHONE, PIXEL, YUBIKEY, YUBIKEY, BADGE, BADGE]
        for _ in range(28):
            self.new_asset(
                rng.choice(stock_models),
                AssetStatus.IN_STOCK,
                holder=None,
                location=rng.choice(["BER-1", "BER-1", "LON-1", "NYC-1", "SIN-1"]),
                age_days=(5, 400),
            )
        for p in [p for p in self.people if p.status == EmployeeStatus.PRE_HIRE]:
            asset = self.new_asset(
                LAPTOP_FOR_ROLE[p.role], AssetStatus.IN_TRANSIT, holder=None, location=p.location, age_days=(3, 60)
            )
            asset.notes = f"Shipping to new joiner {p.first} {p.last} (starts {p.start:%d %b %Y}); DHL 40{rng.randint(10**8, 10**9 - 1)}."  # noqa: E501
        for _ in range(3):
            asset = self.new_asset(rng.choice([U27, LG27]), AssetStatus.IN_TRANSIT, holder=None, location="LON-1")
            asset.notes = "Transfer from Berlin HQ stock to the London office."
        repairs = [
            "Battery swelling; sent to the vendor's repair depot.",
            "Cracked screen.",
            "Keyboard: sticky keys.",
            "Does not boot after an OS update; with the vendor.",
        ]
        for _ in range(9):
            holder = rng.choice(active)
            asset = self.new_asset(
                rng.choice([MBP, AIR, X1, IPHONE]),
                AssetStatus.IN_REPAIR,
                holder=None,
                location=holder.location,
                age_days=(200, 1000),
            )
            asset.notes = rng.choice(repairs)
            self.checkout(asset, holder, end=self.days_ago(3, 25), condition="damaged", note=asset.notes)
        for _ in range(22):
            holder = rng.choice(terminated + active)
            asset = self.new_asset(
                rng.choice([LATITUDE, LATITUDE, AIR, IPHONE, PIXEL]),
                AssetStatus.RETIRED,
                holder=None,
                location="BER-1",
                age_days=(1300, 2000),
            )
            asset.notes = f"End of life: wiped (NIST 800-88) and recycled, certificate R-{rng.randint(10000, 99999)}."
            self.checkout(asset, holder, end=asset.purchase_date + datetime.timedelta(days=900), condition="worn")
        for _ in range(4):
            holder = rng.choice(active)
            asset = self.new_asset(
                rng.choice([IPHONE, AIR, YUBIKEY, PIXEL]),
                AssetStatus.LOST,
                holder=None,
                location=holder.location,
                age_days=(200, 700),
            )
            asset.notes = "Reported lost by the holder; remote-wiped via MDM."
            self.checkout(asset, holder, end=self.days_ago(10, 150), condition="lost", note="Reported lost.")
        bulk_insert(HardwareAsset, self.assets, reason=REASON)
        # A check-out cannot start before the asset was bought.
        for row in self.checkouts:
            row.asset_id = row.asset.pk
        bulk_insert(AssetCheckout, self.checkouts, reason=REASON)

    # --- access requests -------------------------------------------------------------------------

    def steps_for(self, requester: Person, app: str) -> list[tuple[str, Employee]]:
        policy = self.specs[app].policy
        manager = requester.manager.obj if requester.manager else None
        owner = self.apps[app].owner
        steps = []
        if policy in (ApprovalPolicy.MANAGER, ApprovalPolicy.MANAGER_THEN_OWNER):
            steps.append((ApprovalStepKind.MANAGER, manager))
        if policy in (ApprovalPolicy.OWNER, ApprovalPolicy.MANAGER_THEN_OWNER):
            steps.append((ApprovalStepKind.OWNER, owner))
        return steps

    def write_requests(self):
        rng = self.rng
        requests: list[AccessRequest] = []
        steps: list[tuple[AccessRequest, ApprovalStep]] = []
        justifications = {
            "AWS Console": "On-call for the routing service; need to read CloudWatch logs in production.",
            "GitHub": "Updating the website repository for the product launch.",
            "Datadog": "Want the customer-facing latency dashboards for escalations.",
            "Tableau": "Quarterly business review needs the pipeline dashboards.",
            "Figma": "Reviewing the new onboarding flow designs.",
            "Helix Ops Console": "Handling carrier exceptions for my accounts.",
            "NetSuite": "Month-end close: reconciling the APAC entity.",
            "Salesforce": "Joining the renewals working group.",
            "Workday": "Covering people-partner duties while a colleague is on leave.",
        }

        def add(
            p: Person,
            app: str,
            level: str,
            status: str,
            created: datetime.datetime,
            *,
            stage: int = 0,
            entitlement=None,
            reject_at: int | None = None,
        ):
            decided = (
                None
                if status == AccessRequestStatus.PENDING
                else created + datetime.timedelta(hours=rng.randint(2, 40))
            )
            req = AccessRequest(
                employee=p.obj,
                application=self.apps[app],
                level=level,
                justification=justifications.get(app, f"Need {app} for my work as {p.title}."),
                status=status,
                requested_by=p.obj.user,
                created_at=created,
                decided_at=decided,
                entitlement=entitlement,
            )
            req._history_date = created
            requests.append(req)
            for order, (kind, approver) in enumerate(self.steps_for(p, app), start=1):
                step = ApprovalStep(order=order, kind=kind, approver=approver)
                if status == AccessRequestStatus.APPROVED:
                    step.status = ApprovalStepStatus.APPROVED
                elif status == AccessRequestStatus.REJECTED:
                    step.status = (
                        ApprovalStepStatus.APPROVED
                        if order < reject_at
                        else ApprovalStepStatus.REJECTED
                        if order == reject_at
                        else ApprovalStepStatus.SKIPPED
                    )
                elif status == AccessRequestStatus.CANCELLED:
                    step.status = ApprovalStepStatus.SKIPPED
                else:  # pending: steps before `stage` approved, the current one pending, later ones waiting
                    step.status = (
                        ApprovalStepStatus.APPROVED
                        if order <= stage
                        else ApprovalStepStatus.PENDING
                        if order == stage + 1
                        else ApprovalStepStatus.WAITING
                    )
                if step.status in (ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED):
                    step.decided_at = created + datetime.timedelta(hours=order * rng.randint(1, 18))
                    step.decided_by = approver.user
                    if step.status == ApprovalStepStatus.REJECTED:
                        step.comment = "Not needed for this role; the read-only dashboards cover it."
                if step.status == ApprovalStepStatus.PENDING:
                    step.activated_at = created
                step._history_date = step.decided_at or created
                steps.append((req, step))

        # Approved requests behind the requested entitlements.
        for p, ent in self.extras:
            approvers = [a for _k, a in self.steps_for(p, ent.application.name)]
            if not approvers or None in approvers or p.obj in approvers:
                continue
            add(
                p,
                ent.application.name,
                ent.level,
                AccessRequestStatus.APPROVED,
                ent.granted_at - datetime.timedelta(days=rng.randint(1, 4)),
                entitlement=ent,
            )

        # Pending, rejected and cancelled requests for applications people do not hold.
        def candidates(p: Person):
            return [
                s.name
                for s in APPLICATIONS
                if s.requestable
                and s.policy != ApprovalPolicy.NONE
                and s.name not in self.held[p.index]
                and self.apps[s.name].owner_id != p.obj.pk
            ]

        pending_pairs: set[tuple[int, str]] = set()

        def pending(p: Person, app: str, stage: int = 0):
            if (p.index, app) in pending_pairs or app not in candidates(p) or p.manager is None:
                return
            pending_pairs.add((p.index, app))
            levels = self.specs[app].levels
            add(
                p,
                app,
                levels[1] if app == "AWS Console" else levels[0],
                AccessRequestStatus.PENDING,
                self.at(self.days_ago(0, 9)),
                stage=stage,
            )

        manager = self.keyed["manager"]
        team = [p for p in self.people if p.manager is manager and p.status == EmployeeStatus.ACTIVE]
        pending(self.keyed["employee"], "AWS Console")
        for p, app in zip(team[1:], ["Figma", "Tableau", "Helix Ops Console", "AWS Console"], strict=False):
            pending(p, app)
        for p in [p for p in self.people if p.dept in ("CS", "IT") and p.status == EmployeeStatus.ACTIVE][:3]:
            pending(p, "Datadog")
        for p in [p for p in self.people if p.dept in ("MKT", "LEGAL") and p.status == EmployeeStatus.ACTIVE][:2]:
            pending(p, "GitHub", stage=1)
        actives = [p for p in self.people if p.status == EmployeeStatus.ACTIVE and p.manager is not None]
        for p in rng.sample(actives, 40):
            options = candidates(p)
            if options and len(pending_pairs) < 34:
                app = rng.choice(options)
                pending(p, app, stage=rng.choice([0, 1]) if self.specs[app].policy == A.MANAGER_THEN_OWNER else 0)
        for p in rng.sample(actives, 12):
            options = [a for a in candidates(p) if (p.index, a) not in pending_pairs]
            if not options:
                continue
            app = rng.choice(options)
            created = self.at(self.days_ago(15, 200))
            if rng.random() < 0.75:
                n_steps = len(self.steps_for(p, app))
                add(
                    p,
                    app,
                    self.specs[app].levels[0],
                    AccessRequestStatus.REJECTED,
                    created,
                    reject_at=rng.randint(1, n_steps),
                )
            else:
                add(p, app, self.specs[app].levels[0], AccessRequestStatus.CANCELLED, created)
        with explicit_timestamps((AccessRequest, "created_at")):
            bulk_insert(AccessRequest, requests, reason=REASON)
        for req, step in steps:
            step.request = req
        step_objs = bulk_insert(ApprovalStep, [s for _r, s in steps], reason=REASON)
        # Object permissions for the approvers and requesters who can log in.
        for step in step_objs:
            user = step.approver.user
            if user and step.status == ApprovalStepStatus.PENDING:
                assign_perm("accounts.decide_approvalstep", user, step)
        for req in requests:
            if req.requested_by and req.status == AccessRequestStatus.PENDING:
                assign_perm("accounts.cancel_accessrequest", req.requested_by, req)

    # --- a few recent changes through the real services ------------------------------------------

    def recent_activity(self):
        itadmin, helpdesk = self.users["itadmin"], self.users["helpdesk"]
        employee = self.keyed["employee"].obj
        # A new badge for the `employee` login, terms not accepted yet.
        badge = next(a for a in self.assets if a.status == AssetStatus.IN_STOCK and a.model.category == "badge")
        asset_check_out(asset=badge, employee=employee, acting_user=helpdesk, note="Replacement badge.")
        # A leaver's laptop came back by courier.
        returned = next(
            a for a in self.assets if a.status == AssetStatus.PENDING_RETURN and a.assigned_to.status == "terminated"
        )
        asset_check_in(asset=returned, acting_user=helpdesk, condition="good", note="Courier return received.")
        # A phone lost on a business trip.
        phone = next(
            a
            for a in self.assets
            if a.status == AssetStatus.ASSIGNED and a.model.category == "phone" and a.assigned_to != employee
        )
        asset_mark_lost(asset=phone, acting_user=helpdesk, note="Left in a taxi in Singapore; remote-wiped via MDM.")
        # Access: an unused licence reclaimed, and a manual grant.
        unused = next(
            e
            for e in self.entitlements
            if e.status == EntitlementStatus.ACTIVE
            and e.source != EntitlementSource.BIRTHRIGHT
            and e.last_used_at
            and e.last_used_at < self.now - datetime.timedelta(days=120)
            and e.employee != employee
        )
        entitlement_revoke(entitlement=unused, acting_user=itadmin, reason="Not used for over 120 days.")
        seller = next(
            p
            for p in self.people
            if p.role == "sales" and p.status == EmployeeStatus.ACTIVE and "Tableau" not in self.held[p.index]
        )
        entitlement_grant(employee=seller.obj, application=self.apps["Tableau"], level="viewer", acting_user=itadmin)

    # --- checklists: join, move and leave runs through the lifecycle services ---------------------

    def checklists(self) -> list[ChecklistRun]:
        """The demo checklist templates, and runs IT can watch in the admin, made by the real flows.

        - join: the three pre-hires who start first (kit reserved from stock now; access is
          provisioned from three days before day one);
        - move: an account executive moved to Customer Success two days ago, in the grace period
          before their sales access is revoked; IT has created one of the new accounts;
        - leave: someone whose cut-off was `LEAVER_CUT_OFF_DAYS_AGO` days ago: access revoked,
          approvals handed over, one device back and one still out (so the run is still open);
        - future leave: everyone who resigned and leaves in the coming weeks.

        No worker runs during the command, so the runs' due automated tasks are run here, as the
        worker would (`drive`). Demo emails are not sent. The demo's LDAP and webhook applications
        have no server: the leaver's accounts there were removed by IT by hand, and later automated
        tasks for them will fail visibly (noted in the command's output).
        """
        itadmin, helpdesk = self.users["itadmin"], self.users["helpdesk"]
        demo_templates_sync()
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            joins = self.demo_joiners(itadmin)
            move = self.demo_mover(itadmin)
            leave = self.demo_leaver(itadmin, helpdesk)
            future = self.demo_future_leavers(itadmin)
        self.notes.append(
            f"Checklists: {len(joins)} joiners, 1 mover in the grace period, 1 leaver with hardware still out, "
            f"{len(future)} future leavers (admin: Offboarding → Checklist runs)."
        )
        self.notes.append(
            "Note: the demo's LDAP directory and webhook target have no server, so automated tasks on "
            "Corporate Directory or Helix Ops Console (joiners' access from 3 days before day one, future "
            "leavers at their cut-off) will fail after their retries, for IT to retry or skip in the admin."
        )
        return [*joins, move, leave, *future]

    def drive(self, runs: list[ChecklistRun]) -> None:
        """Run the runs' queued automated tasks now, as the worker would (the command runs without one)."""
        for _ in range(50):
            queued = list(
                Task.objects.filter(run__in=runs, status=TaskStatus.QUEUED).order_by("pk").values_list("pk", flat=True)
            )
            if not queued:
                return
            for task_id in queued:
                lifecycle.task_execute(task_id=task_id)

    def _candidates(self, **where) -> list[Person]:
        """Active individual contributors without a login, an end date, an owned application or any
        access request (a change of manager would leave their requests' approvers behind)."""
        managers = {p.manager.index for p in self.people if p.manager}
        owners = {a.owner_id for a in self.apps.values()}
        requesters = set(AccessRequest.objects.values_list("employee_id", flat=True))
        return [
            p
            for p in self.people
            if p.status == EmployeeStatus.ACTIVE
            and p.employment_type == EmploymentType.FULL_TIME
            and p.end is None
            and p.key is None
            and p.index not in managers
            and p.obj.pk not in owners
            and p.obj.pk not in requesters
            and all(getattr(p, name) == value for name, value in where.items())
        ]

    def demo_joiners(self, itadmin) -> list[ChecklistRun]:
        pre_hires = sorted(
            (p for p in self.people if p.status == EmployeeStatus.PRE_HIRE), key=lambda p: (p.start, p.index)
        )
        runs = [flows.joiner_start(employee=p.obj, acting_user=itadmin) for p in pre_hires[:3]]
        self.drive(runs)
        return runs

    def demo_mover(self, itadmin) -> ChecklistRun:
        mover = self._candidates(role="sales", title="Account Executive")[0]
        lead = next(p for p in self.people if p.title == "Customer Success Lead, EMEA")
        employee_update(employee=mover.obj, changes={"title": "Customer Success Manager"}, acting_user=itadmin)
        run = flows.mover_apply(
            employee=mover.obj,
            changes={"role": self.roles["customer-success"], "department": self.departments["CS"], "manager": lead.obj},
            acting_user=itadmin,
            effective_date=self.today - datetime.timedelta(days=2),
        )
        self.drive([run])
        created = (
            run.tasks.filter(action="provision_entitlement", status=TaskStatus.PENDING, assignee_type=Assignee.IT)
            .order_by("pk")
            .first()
        )
        if created is not None:
            lifecycle.task_complete(task=created, acting_user=itadmin, note="Account created by hand.")
        return run

    def demo_leaver(self, itadmin, helpdesk) -> ChecklistRun:
        held = {}
        for holder_id in HardwareAsset.objects.filter(status=AssetStatus.ASSIGNED).values_list(
            "assigned_to", flat=True
        ):
            held[holder_id] = held.get(holder_id, 0) + 1
        leaver = next(p for p in self._candidates() if held.get(p.obj.pk, 0) >= 2 and p.role != "sales")
        last_day = self.today - datetime.timedelta(days=LEAVER_CUT_OFF_DAYS_AGO + 1)
        run = flows.employee_terminate(
            employee=leaver.obj, last_day=last_day, acting_user=itadmin, reason="Resigned: moving abroad."
        )
        # No LDAP or webhook server in the demo: IT removed those accounts by hand at the exit interview.
        automated = Entitlement.objects.filter(employee=leaver.obj, status__in=LIVE_ENTITLEMENT_STATUSES).exclude(
            application__connector=ConnectorType.MANUAL
        )
        for entitlement in automated:
            entitlement_revoke(
                entitlement=entitlement, acting_user=itadmin, reason="Removed by hand at the exit interview."
            )
        self.drive([run])
        # Manual applications are handed to IT; the helpdesk removes the accounts, the cut-off goes on.
        for _ in range(20):
            pending = run.tasks.filter(status=TaskStatus.PENDING, assignee_type=Assignee.IT).exclude(action="")
            if not pending.exists():
                break
            for task in pending.order_by("pk"):
                lifecycle.task_complete(task=task, acting_user=helpdesk, note="Done by hand.")
            self.drive([run])
        mailbox = run.tasks.filter(key__endswith=":archive-mailbox", status=TaskStatus.PENDING).first()
        if mailbox is not None:
            lifecycle.task_complete(task=mailbox, acting_user=helpdesk, note="Archived; auto-reply on for 90 days.")
        returned = HardwareReturn.objects.filter(run=run).order_by("asset__asset_tag").first()
        flows.hardware_return_receive(item=returned, acting_user=helpdesk, note="Dropped off at the front desk.")
        self.backdate(run, run.effective_at - flows.end_of_day(last_day))
        return run

    def backdate(self, run: ChecklistRun, delta: datetime.timedelta) -> None:
        """Move a run's clock back by `delta` (its cut-off may not be in the past in the services).

        The run, its tasks and its hardware returns (due dates included) are shifted; a return
        received today stays received today. History rows and the audit log keep the real times.
        """

        def shifted(obj, names):
            for name in names:
                value = getattr(obj, name)
                if value is not None:
                    setattr(obj, name, value - delta)
            return obj

        run_fields = ["effective_at", "created_at", "completed_at", "last_revocation_at"]
        run = shifted(ChecklistRun.objects.get(pk=run.pk), run_fields)
        run.details = {**run.details, "cut_off": run.effective_at.isoformat()}
        ChecklistRun.objects.bulk_update([run], [*run_fields, "details"])
        task_fields = [
            "due_at",
            "created_at",
            "queued_at",
            "started_at",
            "completed_at",
            "not_before",
            "last_reminded_at",
        ]
        Task.objects.bulk_update([shifted(t, task_fields) for t in run.tasks.all()], task_fields)
        return_fields = ["due_date", "created_at", "shipped_at", "last_reminded_at"]
        HardwareReturn.objects.bulk_update(
            [shifted(r, return_fields) for r in HardwareReturn.objects.filter(run=run)], return_fields
        )

    def demo_future_leavers(self, itadmin) -> list[ChecklistRun]:
        """Everyone who resigned and leaves in the coming weeks (their hardware is already pending return)."""
        leaving = [
            p
            for p in self.people
            if p.status == EmployeeStatus.ACTIVE
            and p.end is not None
            and p.end > self.today
            and p.employment_type != EmploymentType.INTERN
        ]
        runs = [
            flows.employee_terminate(employee=p.obj, last_day=p.end, acting_user=itadmin, reason="Resigned.")
            for p in leaving
        ]
        self.drive(runs)
        return runs
