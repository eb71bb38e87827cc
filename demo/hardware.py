"""The demo company's hardware: asset models, role kits, about 400 devices and their check-out log.

Every status appears (assigned, pending return, in transit, in repair, retired, lost, in stock),
and the check-out log agrees with the holder: a held device has exactly one open check-out, to
its holder. The years of past hand-overs are written in bulk with their historical times (one
history row each), like the rest of the company's past: the asset services stamp the current time
in history and in the audit log, which cannot be backdated, and refuse hand-overs to people who
have left since. Today's changes (a badge handed out, a courier return, a lost phone) go through
the asset services, as the helpdesk.
"""

import datetime
from decimal import Decimal

from accounts.models import EmployeeStatus, EmploymentType
from assets.models import AssetCategory, AssetCheckout, AssetModel, AssetStatus, HardwareAsset, RoleKitItem
from assets.services import asset_check_in, asset_check_out, asset_mark_lost
from demo.company import REASON, Person
from demo.seeding import aware, bulk_insert

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


class HardwareMixin:
    """The hardware part of `DemoBuilder`."""

    def write_asset_models(self):
        """Asset models, and each role's kit (the roles exist already)."""
        self.asset_models = {
            f"{m.manufacturer} {m.name}": m
            for m in bulk_insert(
                AssetModel,
                [
                    AssetModel(manufacturer=mf, name=n, category=cat, default_cost=Decimal(cost))
                    for mf, n, cat, cost, *_ in ASSET_MODELS
                ],
                reason=REASON,
            )
        }
        self.model_specs = {f"{m[0]} {m[1]}": m for m in ASSET_MODELS}
        kits = [
            RoleKitItem(role=role, asset_model=self.asset_models[m], quantity=q)
            for code, role in self.roles.items()
            for m, q in KITS[code]
        ]
        bulk_insert(RoleKitItem, kits, reason=REASON)

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
            # The `manager` and `employee` logins accepted their laptop's terms (the README says so).
            self.checkout(asset, p, accepted=rng.random() < 0.93 or p.key in ("manager", "employee"))
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
                self.checkout(item, p, accepted=True)
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

    def recent_hardware_activity(self):
        """A few of today's hardware changes, made by the helpdesk through the asset services."""
        helpdesk = self.users["helpdesk"]
        employee = self.keyed["employee"].obj
        # A new badge for the `employee` login, terms not accepted yet: the only device of theirs without.
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
