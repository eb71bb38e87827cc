"""Sign-in throttling for both login pages: failed sign-ins counted per username and per client address.

After `SIGN_IN_THROTTLE["FAILURE_LIMIT"]` failures within `WINDOW` for one username, or from one
address, every attempt for it is refused for `COOLOFF`, the right password included, before the
password is checked (so a refused attempt writes nothing). Counts and locks live in Django's default
cache: it must be shared by every process and host that serves sign-ins (Redis, Memcached), or
each one counts on its own. Each lock of a username whose account exists writes one audit event
(`AuditEvent.Action.SIGN_IN_LOCKED`); a lock of an address, or of a username nobody has, throttles
just the same but has no saved row to point an audit event at, so it is logged instead.
"""

import datetime
import hashlib
import ipaddress
import logging
import math

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEvent

logger = logging.getLogger(__name__)

ACCOUNT_LOCKED = "Too many failed sign-ins for this account. Try again in {wait}, or ask IT to unlock it."
ADDRESS_LOCKED = "Too many failed sign-ins from your network address. Try again in {wait}, or ask IT to unlock it."


def _conf() -> dict:
    return settings.SIGN_IN_THROTTLE


def _now() -> datetime.datetime:
    return timezone.now()


def _key(kind: str, what: str, value: str) -> str:
    # Hashed: usernames and addresses may hold characters a cache key may not (Memcached).
    return f"portal:signin:{kind}:{what}:{hashlib.sha256(value.encode()).hexdigest()}"


def _subjects(*, username: str | None, address: str | None) -> list[tuple[str, str]]:
    # Usernames are case-folded so "Erin" and "ERIN" share one count.
    subjects = []
    if username:
        subjects.append(("username", username.casefold()))
    if address:
        subjects.append(("address", address))
    return subjects


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address: REMOTE_ADDR, unless that is a configured trusted proxy (`TRUSTED_PROXIES`).

    Only then is `X-Forwarded-For` read, from the right: each proxy appends the address it saw, so
    the first address that is not a trusted proxy is the client's (anything to its left was written
    by the client and may be forged). A header from any other peer is ignored, so nobody can pick the
    address their failed sign-ins are counted against.
    """
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    if remote is None or not _trusted(remote):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for hop in reversed(forwarded):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed hop: count against the proxy rather than guess
        if not _trusted(hop):
            return hop
    return forwarded[0] if forwarded else remote


def signin_refusal(*, username: str | None, address: str | None) -> str | None:
    """The message refusing a sign-in for this username or from this address, or None when it may go ahead."""
    now = _now()
    for what, value in _subjects(username=username, address=address):
        until = cache.get(_key("lock", what, value))
        if until is not None and until > now:
            minutes = max(1, math.ceil((until - now).total_seconds() / 60))
            wait = "1 minute" if minutes == 1 else f"{minutes} minutes"
            return (ACCOUNT_LOCKED if what == "username" else ADDRESS_LOCKED).format(wait=wait)
    return None


def signin_failure_record(*, username: str, address: str | None) -> None:
    """Count one failed sign-in; the failure that reaches the limit locks the username or address.

    The count is an atomic cache increment, so exactly one failure reaches the limit and exactly one
    audit event is written per lock (for a username whose account exists). A lock clears its count:
    after the cool-off the username or address has the whole limit again.
    """
    conf = _conf()
    window = int(conf["WINDOW"].total_seconds())
    cooloff = conf["COOLOFF"]
    for what, value in _subjects(username=username, address=address):
        count_key = _key("failures", what, value)
        cache.add(count_key, 0, timeout=window)
        try:
            count = cache.incr(count_key)
        except ValueError:  # expired between add and incr
            cache.add(count_key, 1, timeout=window)
            count = 1
        if count != conf["FAILURE_LIMIT" if what == "username" else "ADDRESS_FAILURE_LIMIT"]:
            continue
        until = _now() + cooloff
        cache.set(_key("lock", what, value), until, timeout=int(cooloff.total_seconds()) + 60)
        cache.delete(count_key)
        _lock_record(what=what, username=username, address=address, until=until)


def _lock_record(*, what: str, username: str, address: str | None, until: datetime.datetime) -> None:
    conf = _conf()
    detail = {
        "locked": what,
        "failures": conf["FAILURE_LIMIT"],
        "window_minutes": int(conf["WINDOW"].total_seconds() // 60),
        "until": until,
        "address": address,
    }
    users = list(get_user_model()._default_manager.filter(username__iexact=username)[:2]) if what == "username" else []
    if len(users) != 1:
        locked = username if what == "username" else address
        logger.warning("Sign-in locked for %s %r until %s (no account to audit).", what, locked, until.isoformat())
        return
    audit_record(action=AuditEvent.Action.SIGN_IN_LOCKED, target=users[0], detail=detail)


def signin_success_record(*, username: str, address: str | None) -> None:
    """A successful sign-in clears the failure counts of its username and its address (not their locks)."""
    for what, value in _subjects(username=username, address=address):
        cache.delete(_key("failures", what, value))


def signin_unlock(*, username: str | None = None, address: str | None = None, acting_user=None) -> None:
    """Lift the lock and clear the failure count of a username and/or an address (for IT).

    Unlocking an existing account is audited (`sign_in_unlocked`, naming `acting_user`, or the system
    for the command line), like the lock it lifts.
    """
    for what, value in _subjects(username=username, address=address):
        cache.delete_many([_key("lock", what, value), _key("failures", what, value)])
    users = list(get_user_model()._default_manager.filter(username__iexact=username)[:2]) if username else []
    if len(users) == 1:
        audit_record(
            action=AuditEvent.Action.SIGN_IN_UNLOCKED,
            target=users[0],
            acting_user=acting_user,
            detail={"address": address},
        )


class ThrottledSignInMixin:
    """Refuse a locked username or address before the password is checked; count failures, reset on success."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        address = client_address(self.request)
        refusal = signin_refusal(username=username, address=address)
        if refusal:
            raise forms.ValidationError(refusal, code="sign_in_locked")
        try:
            cleaned_data = super().clean()
        except forms.ValidationError:
            # No user: the password was wrong (or the account inactive). A user refused by
            # confirm_login_allowed (the admin's staff check) knew the password: not a failure.
            if username and password and self.user_cache is None:
                signin_failure_record(username=username, address=address)
                refusal = signin_refusal(username=username, address=address)
                if refusal:
                    raise forms.ValidationError(refusal, code="sign_in_locked") from None
            raise
        if self.user_cache is not None:
            signin_success_record(username=username, address=address)
        return cleaned_data


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    """The self-service login form, throttled."""


class AdminSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The admin login form (staff only), throttled."""
