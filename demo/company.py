"""The demo company's people: offices, departments, roles, the reporting line and the logins.

Plans about 300 employees of Helix Logistics in memory (deterministically, from the builder's seeded
random generator; dates relative to today) and writes them in bulk with one history row each:
locations, the department tree with its heads, roles, employees (pre-hires, leavers, people on
leave, contractors and interns among them) and the six known logins, which share the demo
password (the approvers' logins without a password are `demo.access`'s).

Also holds the constants every demo module shares (the marker, the password, the change reason).
"""

import base64
import datetime
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Department, Employee, EmployeeStatus, EmploymentType, Location, Region, Role
from demo.seeding import ascii_slug, aware, bulk_change, bulk_insert, explicit_timestamps
from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK
from portal.mfa import totp_device_add

SEED = 20260101
MARKER_EMPLOYEE_NUMBER = "P10001"  # the CEO; present ⇔ the demo company is loaded
DEMO_PASSWORD = "portal-demo"
# The demo staff logins' authenticator-app secret (TOTP), published in the README: demo only, like the password.
DEMO_TOTP_SECRET = "OBXXE5DBNQWWIZLNN4WXI33UOAWWWZLZ"  # base32, as an authenticator app takes it
DEMO_TOTP_DEVICE = "Demo authenticator (demo only)"
DOMAIN = "helix.example"
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
    "owner": (
        "owner",
        None,
        "Application owner: GitHub, Jira, Confluence, Datadog, AWS Console; owner approvals waiting",
    ),
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


class CompanyMixin:
    """The people part of `DemoBuilder`: planning the organisation and writing it."""

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
        """The known logins (password `DEMO_PASSWORD`), with their staff groups."""
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
                if not TOTPDevice.objects.filter(user=user).exists():
                    totp_device_add(
                        user=user,
                        key_hex=base64.b32decode(DEMO_TOTP_SECRET).hex(),
                        name=DEMO_TOTP_DEVICE,
                    )
            self.users[username] = user
            person.obj.user = user
        bulk_change(Employee, [self.keyed[k].obj for k, *_ in LOGINS.values()], ["user"], reason=REASON)
