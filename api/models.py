"""What the REST API stores: personal access tokens (hashed) and the idempotency keys of POSTs.

Nothing here is business data: the API reads and writes through the other apps' access helpers
and services. Tokens are random 256-bit secrets, so one SHA-256 of the secret is stored (a slow
password hash would only slow every request; there is nothing to brute-force in 2^256). The
secret itself is shown once, when the token is made.
"""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class ApiToken(models.Model):
    """A personal access token: acts as its user, with exactly that user's groups and object permissions.

    Revoked (never deleted) so the audit trail keeps naming it; a revoked or expired token, or one
    whose user is inactive, authenticates nobody.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “nightly HR sync”.")
    prefix = models.CharField(max_length=16, help_text="The first characters of the token, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token (hex).")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: valid until revoked.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key` header, per user and key.

    The same key with the same request (method, path, body) gets this answer again and writes
    nothing; the same key with another request is refused. Only successful answers are kept: a
    refused request may be corrected and sent again with the same key.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"],
                name="idempotencykey_user_key_unique",
                violation_error_message="This idempotency key has been used already.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
