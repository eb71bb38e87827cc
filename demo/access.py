"""The demo company's access: applications, entitlements, licenses, and access requests.

Applications with owners, every approval policy and licenses; about 3,000 entitlements (birthright,
requested, manual; some unused for months). Those are the company's past and are written in bulk
with their historical times (one history row each): the services stamp the current time, in history
and in the append-only audit log, which cannot be backdated. Today's two changes by `itadmin` go
through the entitlement services.

Whatever decides who may approve what goes through the approval services (`accounts.services`), as people would
click it:
`access_request_create` opens a request (it builds the steps from the policy and grants the object
permissions), the approvers decide with `approval_step_decide`, requesters withdraw with
`access_request_cancel`, and the `manager` login's holiday cover is a `delegation_create`. Only
their times are moved back afterwards (`backdate_request`). A request the product refuses is not
shown. No request is approved to the end: that would provision access the plan already holds.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError

from accounts.models import (
    AccessRequest,
    AccessRequestStatus,
    Application,
    ApprovalPolicy,
    ApprovalStep,
    ConnectorType,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
    RoleApplication,
    Sensitivity,
    SoDEnforcement,
    SoDException,
    SoDRule,
)
from accounts.services.access_requests import access_request_cancel, access_request_create, latest_end_date
from accounts.services.approval_steps import approval_step_decide
from accounts.services.delegations import delegation_create
from accounts.services.entitlements import entitlement_grant, entitlement_revoke
from accounts.services.sod import sod_exception_grant, sod_rule_save
from assets.models import License
from demo.company import DOMAIN, REASON, Person
from demo.seeding import ascii_slug, aware, bulk_change, bulk_insert
from demo.targets import scim_config, webhook_config


@dataclass
class AppSpec:
    name: str
    description: str
    owner: str  # a key of `DemoBuilder.keyed`
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
            S.LOW, False, connector=ConnectorType.SCIM,
            config=scim_config("slack", ["member", "admin"]), license=("Slack", "150.00", "USD", 201, 1.10)),
    AppSpec("Zoom", "Video meetings and webinars.", "it_workplace", A.NONE, ["basic", "licensed", "admin"], S.LOW,
            True, connector=ConnectorType.SCIM,
            config=scim_config("zoom", ["basic", "licensed", "admin"]), license=("Zoom", "149.90", "USD", 9, 1.02)),
    AppSpec("Okta", "Single sign-on and MFA for every application.", "sec_lead", A.OWNER, ["user", "admin"], S.HIGH,
            False, license=("Okta", "96.00", "USD", 260, 1.05)),
    AppSpec("Corporate Directory", "The directory behind Wi-Fi, VPN and printers.", "itadmin", A.NONE, ["user"],
            S.LOW, False, connector=ConnectorType.SCIM, config=scim_config("directory", ["user"])),
    AppSpec("1Password", "Team password vaults.", "sec_lead", A.MANAGER, ["member", "admin"], S.MEDIUM, True,
            connector=ConnectorType.SCIM,
            config=scim_config("1password", ["member", "admin"]), license=("1Password", "95.88", "USD", 77, 1.04)),
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
    AppSpec("AWS Console", "Production and staging AWS accounts (via IAM Identity Center).", "owner",
            A.MANAGER_THEN_OWNER, ["read_only", "developer", "admin"], S.HIGH, True, max_days=90),
    AppSpec("Helix Ops Console", "Internal tool: shipments, carriers and exceptions.", "prod_director", A.MANAGER,
            ["viewer", "operator", "admin"], S.MEDIUM, True, connector=ConnectorType.WEBHOOK,
            config=webhook_config()),
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
            connector=ConnectorType.SCIM,
            config=scim_config("figma", ["viewer", "editor"]), license=("Figma", "540.00", "EUR", 35, 1.40)),
    AppSpec("Miro", "Whiteboards for workshops and planning.", "vp_mkt", A.NONE, ["member", "admin"], S.LOW, True,
            connector=ConnectorType.SCIM,
            config=scim_config("miro", ["member", "admin"]), license=("Miro", "96.00", "EUR", 64, 1.50)),
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


JUSTIFICATIONS = {
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
REJECTION = "Not needed for this role; the read-only dashboards cover it."
# The README's demo story: `employee` asks for it, `manager` then `owner` approve (it is owned by `owner`,
# manager-then-owner). So the `employee` login neither holds it nor has asked for it.
STORY_APPLICATION = "AWS Console"
HOLIDAY_STARTS_IN, HOLIDAY_DAYS = 14, 10  # the `manager` login's holiday: in two weeks, for ten days


class AccessMixin:
    """The access part of `DemoBuilder`."""

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
        birthrights = []
        for code, role in self.roles.items():
            levels = dict(COMMON_BIRTHRIGHTS)
            levels.update(dict(BIRTHRIGHTS[code]))
            birthrights += [
                RoleApplication(role=role, application=self.apps[a], access_level=lv) for a, lv in levels.items()
            ]
        bulk_insert(RoleApplication, birthrights, reason=REASON)
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
            options = [a for a in requestable if a not in held and not (p.key == "employee" and a == STORY_APPLICATION)]
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

    def write_approver_logins(self):
        """A login without a password for every manager and application owner who has none yet.

        The product asks only people who can sign in to approve (`access_request_create` refuses a
        request whose approver cannot); in a real company they sign in through single sign-on. They
        are not demo logins: nobody can sign in as them with a password.
        """
        User = get_user_model()
        approvers = {self.keyed[spec.owner].index for spec in APPLICATIONS}
        approvers |= {p.manager.index for p in self.people if p.manager}
        people = [
            p
            for p in self.people
            if p.index in approvers and p.obj.user_id is None and p.status != EmployeeStatus.TERMINATED
        ]
        unusable = make_password(None)
        users = User.objects.bulk_create(
            [
                User(
                    username=p.obj.work_email.split("@")[0],
                    first_name=p.first,
                    last_name=p.last,
                    email=p.obj.work_email,
                    password=unusable,
                )
                for p in people
            ]
        )
        for p, user in zip(people, users, strict=True):
            p.obj.user = user
        bulk_change(Employee, [p.obj for p in people], ["user"], reason=REASON)

    # --- access requests, through the approval services ---------------------------------------------

    def open_request(self, p: Person, app: str) -> AccessRequest | None:
        """`p` asks for `app` as they would in self-service; None when the product refuses (nothing written)."""
        spec, application = self.specs[app], self.apps[app]
        try:
            return access_request_create(
                employee=p.obj,
                application=application,
                level=spec.levels[1] if app == "AWS Console" else spec.levels[0],
                justification=JUSTIFICATIONS.get(app, f"Need {app} for my work as {p.title}."),
                end_date=latest_end_date(application, self.today),
                acting_user=p.obj.user,
            )
        except ValidationError:
            return None

    def decide(self, request: AccessRequest, *, approve: int, reject: bool = False) -> None:
        """Its first `approve` steps approved by their approvers; with `reject`, the next one rejected.

        Never the last step's approval: that would approve the request, and its access would then be
        provisioned after commit for an entitlement the demo does not plan.
        """
        steps = list(request.steps.select_related("approver__user").order_by("order"))
        approve = min(approve, len(steps) - 1)
        for step in steps:
            if step.order <= approve:
                approval_step_decide(step=step, acting_user=step.approver.user, approve=True)
            elif reject:
                approval_step_decide(step=step, acting_user=step.approver.user, approve=False, comment=REJECTION)
                return
            else:
                return

    def backdate_request(self, request: AccessRequest, created: datetime.datetime) -> None:
        """Give a request just made through the services the past it has in the story.

        The services stamp the current time, while the demo's requests were made over the past days
        and months. Only the times move (created, step activated, step decided, request decided), in
        the order things happened and never later than now; statuses, approvers and permissions stay
        exactly as the services left them. History rows and the audit log keep the real times.
        """
        moment = min(created, self.now)
        AccessRequest.objects.filter(pk=request.pk).update(created_at=moment)
        for step in request.steps.order_by("order"):
            changes = {}
            if step.activated_at is not None:
                changes["activated_at"] = moment
            if step.decided_at is not None:
                moment = min(self.now, moment + datetime.timedelta(hours=self.rng.randint(1, 18)))
                changes["decided_at"] = moment
            if changes:
                ApprovalStep.objects.filter(pk=step.pk).update(**changes)
        request.refresh_from_db(fields=["status", "decided_at"])
        if request.decided_at is not None:
            if request.status != AccessRequestStatus.REJECTED:  # withdrawn some hours after asking
                moment = min(self.now, moment + datetime.timedelta(hours=self.rng.randint(2, 40)))
            AccessRequest.objects.filter(pk=request.pk).update(decided_at=moment)

    def write_requests(self):
        """Pending requests at both stages (some waiting on `manager` and `owner`), rejected and withdrawn ones."""
        rng = self.rng

        def candidates(p: Person):
            return [
                s.name
                for s in APPLICATIONS
                if s.requestable
                and s.policy != ApprovalPolicy.NONE
                and s.name not in self.held[p.index]
                and self.apps[s.name].owner_id != p.obj.pk
            ]

        asked: set[tuple[int, str]] = set()
        pending: list[AccessRequest] = []

        def ask(p: Person, app: str, created, *, approve=0, reject=False, cancel=False) -> AccessRequest | None:
            if (p.index, app) in asked or app not in candidates(p) or p.manager is None:
                return None
            request = self.open_request(p, app)
            if request is None:
                return None
            asked.add((p.index, app))
            if approve or reject:
                self.decide(request, approve=approve, reject=reject)
            if cancel:
                access_request_cancel(request=request, acting_user=p.obj.user)
            self.backdate_request(request, created)
            if not (reject or cancel):
                pending.append(request)
            return request

        def ask_now(p: Person, app: str, stage: int = 0):
            ask(p, app, self.at(self.days_ago(0, 9)), approve=stage)

        manager = self.keyed["manager"]
        team = [p for p in self.people if p.manager is manager and p.status == EmployeeStatus.ACTIVE]
        # The `employee` login has one request waiting for `manager` (not the story's application).
        for app in ("Tableau", "Figma", "Helix Ops Console"):
            if ask(self.keyed["employee"], app, self.at(self.days_ago(0, 9))):
                break
        for p, app in zip(team[1:], ["Figma", "Tableau", "Helix Ops Console", "AWS Console"], strict=False):
            ask_now(p, app)
        for p in [p for p in self.people if p.dept in ("CS", "IT") and p.status == EmployeeStatus.ACTIVE][:3]:
            ask_now(p, "Datadog")
        for p in [p for p in self.people if p.dept in ("MKT", "LEGAL") and p.status == EmployeeStatus.ACTIVE][:2]:
            ask_now(p, "GitHub", stage=1)
        actives = [p for p in self.people if p.status == EmployeeStatus.ACTIVE and p.manager is not None]
        for p in rng.sample(actives, 40):
            options = candidates(p)
            if options and len(pending) < 34:
                app = rng.choice(options)
                ask_now(
                    p, app, rng.choice([0, 1]) if self.specs[app].policy == ApprovalPolicy.MANAGER_THEN_OWNER else 0
                )
        # Decided ones: mostly rejected at some step; withdrawn by requesters who can sign in.
        for p in rng.sample(actives, 12):
            options = [a for a in candidates(p) if (p.index, a) not in asked]
            if not options:
                continue
            app = rng.choice(options)
            created = self.at(self.days_ago(15, 200))
            if rng.random() < 0.75 or p.obj.user_id is None:
                steps = 2 if self.specs[app].policy == ApprovalPolicy.MANAGER_THEN_OWNER else 1
                ask(p, app, created, approve=rng.randint(1, steps) - 1, reject=True)
            else:
                ask(p, app, created, cancel=True)
        employee = self.keyed["employee"]
        withdrawn = [a for a in candidates(employee) if (employee.index, a) not in asked and a != STORY_APPLICATION]
        if withdrawn:
            ask(employee, withdrawn[0], self.at(self.days_ago(20, 40)), cancel=True)

    def write_delegation(self):
        """`manager` goes on holiday in two weeks; `owner` decides their approvals meanwhile."""
        manager, owner = self.keyed["manager"].obj, self.keyed["owner"].obj
        starts_on = self.today + datetime.timedelta(days=HOLIDAY_STARTS_IN)
        delegation_create(
            delegator=manager,
            delegate=owner,
            starts_on=starts_on,
            ends_on=starts_on + datetime.timedelta(days=HOLIDAY_DAYS - 1),
            acting_user=manager.user,
            reason="Summer holiday.",
        )

    def recent_access_activity(self):
        """Two of today's access changes by `itadmin`, through the entitlement services."""
        itadmin = self.users["itadmin"]
        employee = self.keyed["employee"].obj
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

    def write_sod_rule(self):
        """One separation-of-duties rule, and the one person allowed to break it for a month.

        Whoever edits pay data in Workday (HR partner) must not also book payables in NetSuite
        (accountant). One HR partner covers payroll at month-end: the security lead (the rule's control
        owner) allowed it for 30 days, then IT granted NetSuite by hand. So the violations report shows
        one allowed conflict.
        """
        itadmin = self.users["itadmin"]
        security = self.keyed["sec_lead"].obj  # the control owner: not NetSuite's owner, so it is a step of its own
        rule = sod_rule_save(
            rule=SoDRule(
                name="Payroll data vs payables",
                reason="Whoever can change pay data must not also pay it out: one person could add a "
                "fictitious employee and pay them.",
                first_application=self.apps["Workday"],
                first_level="hr_partner",
                second_application=self.apps["NetSuite"],
                second_level="accountant",
                enforcement=SoDEnforcement.APPROVAL,
                control_owner=security,
            ),
            acting_user=itadmin,
        )
        cover = next(
            p
            for p in self.people
            if p.role == "people" and p.status == EmployeeStatus.ACTIVE and "NetSuite" not in self.held[p.index]
        )
        sod_exception_grant(
            exception=SoDException(
                rule=rule,
                employee=cover.obj,
                starts_on=self.today,
                ends_on=self.today + datetime.timedelta(days=29),
                reason="Covers payroll at month-end while the payroll specialist is on leave.",
                approved_by=security,
            ),
            acting_user=itadmin,
        )
        entitlement_grant(
            employee=cover.obj, application=self.apps["NetSuite"], level="accountant", acting_user=itadmin
        )
        self.held[cover.index].add("NetSuite")
