"""What the company owns and pays for: hardware and its check-outs, and licenses.

Seats used on a license are counted from active entitlements, never stored.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Application, Employee, Location, Role
from portal.limits import LONG_TEXT, SHORT_TEXT, limited_text


class AssetCategory(models.TextChoices):
    LAPTOP = "laptop", "Laptop"
    PHONE = "phone", "Phone"
    MONITOR = "monitor", "Monitor"
    TOKEN = "token", "Security token"
    BADGE = "badge", "Badge"
    OTHER = "other", "Other"


class AssetModel(models.Model):
    """A make and model of hardware, e.g. Apple MacBook Pro 14 M3."""

    manufacturer = models.CharField(max_length=100)
    name = models.CharField(max_length=150)
    category = models.CharField(max_length=20, choices=AssetCategory.choices)
    default_cost = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["manufacturer", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["manufacturer", "name"],
                name="assetmodel_unique",
                violation_error_message="This manufacturer already has a model with this name.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.name}"


class AssetStatus(models.TextChoices):
    IN_STOCK = "in_stock", "In stock"
    ASSIGNED = "assigned", "Assigned"
    PENDING_RETURN = "pending_return", "Pending return"
    IN_TRANSIT = "in_transit", "In transit"
    IN_REPAIR = "in_repair", "In repair"
    RETIRED = "retired", "Retired"
    LOST = "lost", "Lost"


HELD_STATUSES = (AssetStatus.ASSIGNED, AssetStatus.PENDING_RETURN)


class HardwareAsset(models.Model):
    """One physical device with a unique asset tag and serial.

    It has a holder (`assigned_to`) exactly when its status is assigned or
    pending return; checking out and in goes through `assets.services`, which
    keeps the `AssetCheckout` log in step.
    """

    asset_tag = models.CharField(max_length=30, unique=True)
    serial = models.CharField(max_length=100, unique=True)
    model = models.ForeignKey(AssetModel, on_delete=models.PROTECT, related_name="assets")
    status = models.CharField(max_length=20, choices=AssetStatus.choices, default=AssetStatus.IN_STOCK)
    assigned_to = models.ForeignKey(Employee, null=True, blank=True, on_delete=models.PROTECT, related_name="hardware")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="assets")
    reserved_for = models.ForeignKey(
        Employee,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reserved_hardware",
        help_text="A joiner this in-stock asset is set aside for (from the role's kit).",
    )
    purchase_date = models.DateField(null=True, blank=True)
    purchase_cost = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    warranty_end = models.DateField(null=True, blank=True)
    notes = limited_text(LONG_TEXT, "The notes", blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["asset_tag"]
        indexes = [
            models.Index(fields=["status", "asset_tag"], name="asset_status_tag_idx"),
            models.Index(fields=["assigned_to", "status"], name="asset_holder_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(status__in=["assigned", "pending_return"], assigned_to__isnull=False)
                    | (~Q(status__in=["assigned", "pending_return"]) & Q(assigned_to__isnull=True))
                ),
                name="asset_holder_matches_status",
                violation_error_message=(
                    "An assigned or pending-return asset needs a holder, and any other status must have none."
                ),
            ),
            models.CheckConstraint(
                condition=Q(reserved_for__isnull=True) | Q(status="in_stock"),
                name="asset_reserved_only_in_stock",
                violation_error_message="Only an asset in stock can be reserved for a joiner.",
            ),
            models.CheckConstraint(
                condition=Q(purchase_cost__isnull=True) | Q(purchase_cost__gte=0),
                name="asset_cost_not_negative",
                violation_error_message="Purchase cost cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(warranty_end__isnull=True)
                | Q(purchase_date__isnull=True)
                | Q(warranty_end__gte=models.F("purchase_date")),
                name="asset_warranty_after_purchase",
                violation_error_message="Warranty cannot end before the purchase date.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_tag} · {self.model}"


class AssetCheckout(models.Model):
    """One period during which an employee held an asset, and their acceptance of the terms.

    At most one open (not checked in) check-out per asset.
    """

    asset = models.ForeignKey(HardwareAsset, on_delete=models.PROTECT, related_name="checkouts")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="checkouts")
    checked_out_at = models.DateTimeField()
    checked_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    terms_version = models.CharField(max_length=20, default="2026-01")
    terms_accepted_at = models.DateTimeField(null=True, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    condition_on_return = models.CharField(max_length=100, blank=True)
    note = limited_text(SHORT_TEXT, "The note", blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-checked_out_at", "-id"]
        indexes = [models.Index(fields=["employee", "checked_in_at"], name="checkout_employee_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["asset"],
                condition=Q(checked_in_at__isnull=True),
                name="checkout_one_open_per_asset",
                violation_error_message="This asset is already checked out.",
            ),
            models.CheckConstraint(
                condition=Q(checked_in_at__isnull=True) | Q(checked_in_at__gte=models.F("checked_out_at")),
                name="checkout_in_after_out",
                violation_error_message="Check-in cannot be before check-out.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset.asset_tag} → {self.employee.full_name}"


class RoleKitItem(models.Model):
    """Part of a role's standard hardware kit: how many of which model a new joiner gets."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="kit_items")
    asset_model = models.ForeignKey(AssetModel, on_delete=models.PROTECT, related_name="kit_items")
    quantity = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["role", "asset_model"],
                name="rolekit_unique",
                violation_error_message="This model is already in the role's kit; change its quantity instead.",
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1),
                name="rolekit_quantity_positive",
                violation_error_message="Quantity must be at least 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.asset_model} for {self.role}"


class License(models.Model):
    """A contract for an application: seats bought, cost per seat, renewal date.

    Seats used are the application's active entitlements, counted when needed.
    """

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="licenses")
    vendor = models.CharField(max_length=100)
    contract_number = models.CharField(max_length=50, unique=True)
    seats_purchased = models.PositiveIntegerField()
    cost_per_seat = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="EUR")
    start_date = models.DateField()
    renewal_date = models.DateField()
    notes = limited_text(LONG_TEXT, "The notes", blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["renewal_date", "id"]
        indexes = [models.Index(fields=["renewal_date"], name="license_renewal_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(renewal_date__gt=models.F("start_date")),
                name="license_renewal_after_start",
                violation_error_message="Renewal date must be after the start date.",
            ),
            models.CheckConstraint(
                condition=Q(cost_per_seat__gte=0),
                name="license_cost_not_negative",
                violation_error_message="Cost per seat cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"),
                name="license_currency_iso",
                violation_error_message="Currency must be a three-letter ISO 4217 code, e.g. EUR.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application} · {self.contract_number}"

    @property
    def annual_cost(self) -> Decimal:
        return self.cost_per_seat * self.seats_purchased

    def clean(self):
        if self.currency:
            self.currency = self.currency.upper()
        if self.start_date and self.renewal_date and self.renewal_date <= self.start_date:
            raise ValidationError({"renewal_date": "Renewal date must be after the start date."})
