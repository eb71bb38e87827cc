"""Writes of the API's own rows: tokens made and revoked (history + audit), the last-use stamp.

A token is `portal_` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored; the secret is returned once by `api_token_create` and never again.
"""

import datetime
import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from portal.audit import audit_record
from portal.history import set_history_user
from portal.models import AuditEvent

TOKEN_PREFIX = "portal_"
# A token used again within this long keeps its stamp: one UPDATE a minute at most, not one a request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)
MAX_TOKEN_DAYS = 366 * 2


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str, expires_in_days: int | None, acting_user) -> tuple[ApiToken, str]:
    """Make a token for `user` (an active login); returns the row and the secret, shown once."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. “nightly HR sync”."})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": "The name may be at most 100 characters long."})
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise ValidationError({"expires_in_days": f"Choose between 1 and {MAX_TOKEN_DAYS} days, or no expiry."})
    if not user.is_active:
        raise ValidationError("This login is disabled; it cannot have API tokens.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        key_hash=token_hash(secret),
        expires_at=timezone.now() + datetime.timedelta(days=expires_in_days) if expires_in_days else None,
    )
    set_history_user(token, acting_user)
    token.save()
    audit_record(
        action=AuditEvent.Action.API_TOKEN_CREATED,
        target=token,
        acting_user=acting_user,
        detail={"user": user.pk, "prefix": token.prefix, "expires_at": token.expires_at},
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, acting_user) -> ApiToken:
    """Revoke a token at once (its next request answers 401). Idempotent: a revoked token stays as it was."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.revoked_by = acting_user if getattr(acting_user, "pk", None) else None
    set_history_user(token, acting_user)
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        action=AuditEvent.Action.API_TOKEN_REVOKED,
        target=token,
        acting_user=acting_user,
        detail={"user": token.user_id, "prefix": token.prefix},
    )
    return token


def api_token_authenticate(secret: str) -> ApiToken | None:
    """The live token whose secret this is, with its user; None for an unknown, revoked or expired one,
    or one whose user is disabled. Stamps `last_used_at` (at most once per `LAST_USED_RESOLUTION`)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(secret)).first()
    now = timezone.now()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # A stamp, not a change of access: no history row (one per minute per token would drown it).
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
