"""Shared models that every app may write to. This module imports no Portal app."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin


class AuditEventQuerySet(models.QuerySet):
    """Bulk writes that would bypass AuditEvent.save()/delete() are refused too.

    Nothing rewrites an event: the retention purge redacts the personal values in
    `AuditEventPersonal`, which the hash chain holds only as salted commitments
    (`portal.auditchain`). On PostgreSQL a trigger refuses UPDATE and DELETE in the table itself.
    """

    def update(self, **kwargs):
        raise PermissionDenied("Audit events are append-only.")

    def delete(self):
        raise PermissionDenied("Audit events are append-only.")


class AuditEventManager(models.Manager.from_queryset(AuditEventQuerySet)):
    def get_queryset(self):
        # The readable values (actor name, target description, detail) live in the redactable table.
        return super().get_queryset().select_related("personal")


class AuditEvent(models.Model):
    """One security-relevant event (grant, revoke, check-out, terminate, purge ...).

    Append-only and tamper-evident: each event has the next `seq` and a `hash` over its canonical
    form chained to the previous event's (`portal.auditchain`); `python manage.py audit_verify`
    recomputes it. The target is stored as model label + primary key; the readable values that may
    name a person (`actor_repr`, `target_repr`, `detail`) live in `AuditEventPersonal` and enter the
    hash only as salted commitments, so the retention purge can redact them without breaking the
    chain. Write events through `portal.audit.audit_record` (or `save()`, which appends to the chain).
    """

    class Action(models.TextChoices):
        GRANT = "grant", "Access granted"
        REVOKE = "revoke", "Access revoked"
        REQUEST = "request", "Access requested"
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"
        CHECK_OUT = "check_out", "Asset checked out"
        CHECK_IN = "check_in", "Asset checked in"
        ASSET_STATUS = "asset_status", "Asset status changed"
        TERMS = "terms", "Terms accepted"
        TERMINATE = "terminate", "Employee terminated"
        PURGE = "purge", "Personal data purged"
        ACCOUNT_FORGOTTEN = "account_forgotten", "Account forgotten by an application (retention purge)"
        DELETE = "delete", "Deleted"
        IMPORT = "import", "Imported"
        # People
        EMPLOYEE_CREATED = "employee_created", "Employee created"
        STATUS_CHANGED = "status_changed", "Employee status changed"
        LOGIN_DISABLED = "login_disabled", "Login disabled"
        EMPLOYEE_MOVED = "employee_moved", "Employee moved (role, department or manager)"
        # Access: levels, requests, approvals and delegations
        LEVEL_CHANGED = "level_changed", "Access level changed"
        ACCESS_REQUEST_CANCELLED = "access_request_cancelled", "Access request cancelled"
        APPROVAL_HANDED_OVER = "approval_handed_over", "Approval handed over by a leaver"
        APPROVAL_MOVED = "approval_moved", "Approval moved to the new manager"
        OWNER_HANDED_OVER = "owner_handed_over", "Application ownership handed over"
        DELEGATION_CREATED = "delegation_created", "Approvals delegated"
        DELEGATION_CANCELLED = "delegation_cancelled", "Delegation cancelled"
        # Hardware
        ASSET_RESERVED = "asset_reserved", "Asset reserved"
        ASSET_RESERVATION_RELEASED = "asset_reservation_released", "Asset reservation released"
        RETURN_REQUESTED = "return_requested", "Hardware return requested"
        RETURN_SHIPPED = "return_shipped", "Hardware return shipped"
        RETURN_RECEIVED = "return_received", "Hardware return received"
        # Checklists (one "started" member per checklist kind; the cancelled kind is in the detail)
        JOIN_STARTED = "join_started", "Join checklist started"
        MOVE_STARTED = "move_started", "Move checklist started"
        LEAVE_STARTED = "leave_started", "Leave checklist started"
        ACCESS_STARTED = "access_started", "Access-change checklist started"
        RUN_CANCELLED = "run_cancelled", "Checklist cancelled"
        TASK_RETRIED = "task_retried", "Checklist task retried"
        TASK_SKIPPED = "task_skipped", "Checklist task skipped"
        TASK_FAILED = "task_failed", "Checklist task failed for good (IT alerted)"
        # Manager change requests
        CHANGE_REQUESTED = "change_requested", "Change requested by a manager"
        CHANGE_CONFIRMED = "change_confirmed", "Change request confirmed by IT"
        CHANGE_DECLINED = "change_declined", "Change request declined by IT"
        # Sign-in
        SIGN_IN_LOCKED = "sign_in_locked", "Sign-in locked after repeated failures"
        SIGN_IN_UNLOCKED = "sign_in_unlocked", "Sign-in lock lifted by IT"
        # Identity sources and event hooks
        USAGE_IMPORTED = "usage_imported", "Usage (sign-in log) imported"
        SUBSCRIBER_CHANGED = "subscriber_changed", "Event subscriber added or changed"
        SUBSCRIBER_DELETED = "subscriber_deleted", "Event subscriber deleted"
        # Identity providers (SCIM)
        EMPLOYEE_CHANGED = "employee_changed", "Employee details changed"
        SCIM_CONNECTION_CREATED = "scim_connection_created", "SCIM connection created"
        SCIM_CONNECTION_REVOKED = "scim_connection_revoked", "SCIM connection revoked"
        SCIM_TOKEN_REFUSED = "scim_token_refused", "SCIM request refused: bad or revoked token"
        ROLE_CREATED = "role_created", "Role created"
        # REST API
        API_TOKEN_CREATED = "api_token_created", "API token created"
        API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
        # Access reviews (certification campaigns)
        REVIEW_LAUNCHED = "review_launched", "Access review launched"
        REVIEW_DECIDED = "review_decided", "Access review item decided"
        REVIEW_ESCALATED = "review_escalated", "Access review item escalated"
        REVIEW_DUE_APPLIED = "review_due_applied", "Access review due date: unanswered items followed its rule"
        REVIEW_CAP_CONFIRMED = "review_cap_confirmed", "Access review: IT confirmed revocations over the cap"
        REVIEW_REAPPLIED = "review_reapplied", "Access review decision sent to the engine again"
        REVIEW_CLOSED = "review_closed", "Access review closed"
        # Separation of duties
        SOD_RULE_SAVED = "sod_rule_saved", "Separation-of-duties rule saved"
        SOD_EXCEPTION_GRANTED = "sod_exception_granted", "Separation-of-duties exception granted"
        SOD_EXCEPTION_ENDED = "sod_exception_ended", "Separation-of-duties exception ended early"
        SOD_GRANT_BLOCKED = "sod_grant_blocked", "Grant blocked: it would break a separation-of-duties rule"
        # Scoped administration
        ADMIN_SCOPE_SAVED = "admin_scope_saved", "Admin scope of a helpdesk login saved"
        ADMIN_SCOPE_REMOVED = "admin_scope_removed", "Admin scope of a helpdesk login removed"
        # Second factor (TOTP, passkeys, recovery codes)
        SECOND_FACTOR_ENROLLED = "second_factor_enrolled", "Second-factor device enrolled"
        SECOND_FACTOR_VERIFIED = "second_factor_verified", "Second factor verified at sign-in"
        SECOND_FACTOR_FAILED = "second_factor_failed", "Wrong second-factor code"
        SECOND_FACTOR_REMOVED = "second_factor_removed", "Second-factor device removed"
        RECOVERY_CODES_ISSUED = "recovery_codes_issued", "Recovery codes issued"
        RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"

    seq = models.PositiveBigIntegerField(unique=True, help_text="Position in the hash chain: 1, 2, 3 ... without gaps.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who did it; empty for the system. Not hashed (the chain has the name): cleared on user deletion.",
    )
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64)
    # The chain (portal.auditchain): commitments to the personal values, the previous hash and this one.
    actor_commitment = models.CharField(max_length=64)
    target_commitment = models.CharField(max_length=64)
    detail_commitment = models.CharField(max_length=64)
    chain_version = models.PositiveSmallIntegerField(default=1, help_text="Version of the canonical form hashed.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_repr or 'system'} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionDenied("Audit events are append-only.")
        from portal.auditchain import events_append  # the chain's one write path

        events_append([self])

    def delete(self, *args, **kwargs):
        raise PermissionDenied("Audit events are append-only.")

    # The readable values, kept in AuditEventPersonal (select_related by the default manager).
    def _personal(self) -> "AuditEventPersonal":
        try:
            return self.personal
        except AuditEventPersonal.DoesNotExist:
            self.personal = AuditEventPersonal(actor_repr="", target_repr="", detail={})
            return self.personal

    @property
    def actor_repr(self) -> str:
        return self._personal().actor_repr

    @actor_repr.setter
    def actor_repr(self, value: str) -> None:
        self._personal().actor_repr = value

    @property
    def target_repr(self) -> str:
        return self._personal().target_repr

    @target_repr.setter
    def target_repr(self, value: str) -> None:
        self._personal().target_repr = value

    @property
    def detail(self) -> dict:
        return self._personal().detail

    @detail.setter
    def detail(self, value: dict) -> None:
        self._personal().detail = value


class AuditEventPersonal(models.Model):
    """The readable values of one audit event that may name a person, each with the salt of its commitment.

    The event's hash covers `HMAC-SHA256(salt, value)` for each (`portal.auditchain.commitment`), not
    the value. The retention purge rewrites a value here and clears its salt (`redacted_at` set):
    the chain still verifies, the old value can no longer be proven nor guessed from the
    commitment, and `audit_verify` counts it as redacted. Any other change is tampering.
    """

    event = models.OneToOneField(AuditEvent, primary_key=True, on_delete=models.CASCADE, related_name="personal")
    actor_repr = models.CharField(max_length=150, blank=True)
    actor_salt = models.CharField(max_length=32, blank=True)
    target_repr = models.CharField(max_length=255)
    target_salt = models.CharField(max_length=32, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    detail_salt = models.CharField(max_length=32, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    # Field -> its salt: what `portal.personal_data.personal_data_rewrite` clears when it rewrites one.
    REDACTABLE = {"actor_repr": "actor_salt", "target_repr": "target_salt", "detail": "detail_salt"}

    class Meta:
        default_permissions = ("view",)
        verbose_name = "audit event personal values"
        verbose_name_plural = "audit event personal values"

    def __str__(self) -> str:
        return f"personal values of audit event {self.event_id}"

    @classmethod
    def redaction_marks(cls, field_name: str) -> dict:
        """What else to write when the purge rewrites `field_name`: its salt cleared, the redaction dated."""
        return {cls.REDACTABLE[field_name]: "", "redacted_at": timezone.now()} if field_name in cls.REDACTABLE else {}


class AuditChainHead(models.Model):
    """The last link of the audit chain (one row, id 1): what the next event chains to.

    On PostgreSQL appends lock this row (`SELECT ... FOR UPDATE`) in the transaction that inserts,
    so concurrent writers queue instead of forking the chain; a trigger moves it with each insert.
    SQLite's write lock serialises appends by itself, and the last event is read directly there.
    """

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"audit chain head at {self.seq}"


class AuditCheckpoint(models.Model):
    """A signed statement "the audit chain at `seq` ends in `hash`" (Ed25519, key from the environment).

    Made periodically (`portal.tasks.audit_checkpoint`, hourly) or with `manage.py audit_checkpoint`;
    exported with `audit_checkpoint_export` and kept elsewhere, so rewriting the log and recomputing
    every hash after it is still caught by `audit_verify`.
    """

    seq = models.PositiveBigIntegerField(db_index=True)
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=16, help_text="The first 16 hex digits of SHA-256 over the public key.")
    signature = models.CharField(max_length=128, help_text="Ed25519 over the canonical statement, hex.")

    class Meta:
        ordering = ["-seq", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"audit checkpoint at {self.seq}"


class OutboundEmail(models.Model):
    """One email Portal sends (the outbox): written with the change it tells about, transmitted at most once.

    `portal.mail.email_send_on_commit` writes the rendered email here inside the caller's
    transaction (a rollback leaves no row: nobody hears of a change that did not happen) and
    enqueues `portal.tasks.outbox_send(id)` on commit; `portal.mail.outbox_deliver` sends it. The row
    id is the idempotency key: it names the message (`message_id`), and every delivery claims the
    row first, so a task delivered twice sends once.

    Status:
    - `pending`: waiting for a worker (first try, or a retry once `next_attempt_at` has passed;
      the sweeper enqueues those, and first tries whose queue message was lost).
    - `sending`: claimed by one delivery (`attempts` counts claims and identifies the current one).
      `handed_at` is set, by a conditional update, once the mail server has accepted the sender and
      recipients and just before the message itself goes out: only one delivery can pass that gate.
    - `sent`: the server accepted the message (`sent_at`).
    - `unconfirmed`: the message was handed over but the server's answer was never recorded (the
      worker was killed, or the connection broke mid-message). The server may have it, so it is
      never sent again automatically; IT checks the mail server's log for `message_id`.
    - `failed`: the server refused it for good, or no attempts are left; `last_error` says why.

    Personal data (for a retention purge): `recipients` (addresses), `subject`, `body` and `html`
    (rendered with names, addresses, free text and links), `last_error` (a server's refusal may
    quote an address). `from_email`, `reply_to` and `template` name only the company and the kind.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        UNCONFIRMED = "unconfirmed", "Handed over, outcome unknown: check the mail server"
        FAILED = "failed", "Failed"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    template = models.CharField(max_length=100, help_text="The template under templates/emails/ it was rendered from.")
    key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="The caller's idempotency key, when it gave one: a second send with it sends nothing.",
    )
    from_email = models.CharField(max_length=254)
    recipients = models.TextField(help_text="One address per line.")
    reply_to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=998)
    body = models.TextField()
    html = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Deliveries that claimed it.")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="A pending email not sent by then is enqueued again by the sweeper."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    handed_at = models.DateTimeField(null=True, blank=True, help_text="When the message itself went to the server.")
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_status_due_idx")]
        default_permissions = ("view",)
        verbose_name = "outbound email"

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)} ({self.status})"

    @property
    def to(self) -> list[str]:
        return [line for line in self.recipients.splitlines() if line]

    @property
    def message_id(self) -> str:
        """The `Message-ID` header, the same on every attempt: derived from the row id and its creation time
        (so two databases, or a database reset, do not reuse one), at the sender's domain."""
        domain = self.from_email.rpartition("@")[2].strip("> ") or "portal.invalid"
        return f"<portal-outbox-{self.pk}.{self.created_at:%Y%m%d%H%M%S}@{domain}>"


class EventType(models.TextChoices):
    """The lifecycle events a subscriber may receive (`portal.events.event_emit`; payloads in the README)."""

    EMPLOYEE_JOINED = "employee.joined", "Employee joined (join run started)"
    EMPLOYEE_MOVED = "employee.moved", "Employee moved (role, department or manager)"
    EMPLOYEE_LEFT = "employee.left", "Employee left (termination recorded, with its cut-off)"
    ENTITLEMENT_GRANTED = "entitlement.granted", "Entitlement granted (access active)"
    ENTITLEMENT_REVOKED = "entitlement.revoked", "Entitlement revoked"
    ACCESS_REQUEST_DECIDED = "access_request.decided", "Access request decided (approved or rejected)"
    HARDWARE_RETURNED = "hardware.returned", "Hardware returned (received by IT)"


class EventSubscriber(models.Model):
    """A system outside Portal told of lifecycle events: a URL, a shared secret, the events it wants.

    Every event it subscribes to becomes one `EventDelivery` row written with the change itself
    (`portal.events.event_emit`), sent signed like the webhook connector (`portal.signing`).
    """

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500, help_text="Where to POST, e.g. https://hr.example.com/hooks/portal.")
    secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="HMAC-SHA256 key shared with the receiver (at least 16 characters); or name an environment "
        "variable in the next field to keep it out of the database.",
    )
    secret_env = models.CharField(max_length=100, blank=True, help_text="Environment variable holding the secret.")
    events = models.JSONField(default=list, blank=True, help_text="The event types it receives.")
    active = models.BooleanField(default=True, help_text="Inactive: no new deliveries are written for it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "event subscriber"

    def __str__(self) -> str:
        return self.name


class EventDelivery(models.Model):
    """One event for one subscriber (the outbox of event hooks): written in the transaction of the change,
    sent by `portal.tasks.event_deliver(id)`, retried with backoff.

    `event_id` is the idempotency key: the same for every attempt (and every subscriber of that event),
    sent as `X-Portal-Idempotency-Key` and in the body. A worker killed after sending but before marking
    the row sends the same id again; the receiver applies an id once (see the README).

    Status: `pending` (waiting, or a retry once `next_attempt_at` passes), `sending` (claimed by one
    attempt), `delivered` (a 2xx answer), `failed` (a 4xx answer, or attempts used up; IT may retry it).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    subscriber = models.ForeignKey(EventSubscriber, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(help_text="The event's id: the idempotency key the receiver dedupes on.")
    event_type = models.CharField(max_length=50, db_index=True)
    payload = models.JSONField(help_text="The body sent, every attempt the same.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="eventdelivery_status_due_idx")]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "event_id"], name="eventdelivery_once_per_subscriber"),
        ]
        verbose_name = "event delivery"
        verbose_name_plural = "event deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.subscriber_id} ({self.status})"


class RecoveryCodeDevice(TimestampMixin, ThrottlingMixin, Device):
    """A person's set of single-use recovery codes: a django-otp device, like django-otp's StaticDevice.

    Unlike StaticDevice, whose StaticToken rows hold each code as plain text, only a SHA-256 digest
    of each code is stored (`RecoveryCode.digest`): the codes carry 80 random bits each, so an
    unsalted digest cannot be reversed by guessing, and a copy of the database does not hand anyone
    a way past the second factor. A code is deleted when used. Wrong codes are throttled
    (django-otp's ThrottlingMixin: each failure doubles the wait). `portal.mfa` is the only writer.
    """

    class Meta:
        verbose_name = "recovery code set"

    def __str__(self) -> str:
        return f"Recovery codes of {self.user}"

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1)

    def verify_token(self, token) -> bool:
        """True, and the code used up, when `token` is one of the unused codes (and throttling allows a try)."""
        from portal.mfa import recovery_code_digest

        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        match = self.codes.filter(digest=recovery_code_digest(str(token))).first()
        if match is None:
            self.throttle_increment()
            return False
        match.delete()
        self.throttle_reset(commit=False)
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True


class RecoveryCode(models.Model):
    """One unused recovery code of a `RecoveryCodeDevice`: its SHA-256 digest only, never the code."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "digest"], name="recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code {self.digest[:8]}…"
