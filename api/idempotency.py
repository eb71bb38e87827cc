"""`Idempotency-Key` on POST: the same key and request replays the first answer and writes nothing again.

The key row is inserted in the same transaction as the write it guards. A second request with the
key waits on the unique index until the first commits (PostgreSQL) or the write lock (SQLite), then
finds the stored answer and replays it; if the first failed, nothing was stored and the key is free
again. A key is kept `PORTAL_API_IDEMPOTENCY_HOURS` (24); after that it may be used afresh.
"""

import datetime
import functools
import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from api.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class _NotKept(Exception):
    """Rolls the key row back with a refused request, carrying the answer out of the transaction."""

    def __init__(self, response):
        self.response = response


def _error(code: int, message: str) -> Response:
    return Response({"detail": message}, status=code)


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()


def _replay(record: IdempotencyKey, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        return _error(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"The Idempotency-Key {record.key!r} was used for another request ({record.method} {record.path} "
            "with another body); use a new key for a new request.",
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _expiry() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=getattr(settings, "PORTAL_API_IDEMPOTENCY_HOURS", 24))


def idempotent(view_method):
    """Wrap a POST handler of a DRF view: without the header it runs as it is."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _error(400, f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable characters.")
        fingerprint = _fingerprint(request)
        user = request.user
        try:
            with transaction.atomic():
                IdempotencyKey.objects.filter(user=user, key=key, created_at__lt=_expiry()).delete()
                try:
                    with transaction.atomic():
                        record = IdempotencyKey.objects.create(
                            user=user,
                            key=key,
                            fingerprint=fingerprint,
                            method=request.method,
                            path=request.path[:500],
                            response_status=0,
                        )
                except IntegrityError:
                    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
                    if existing is None:  # the other request with this key was refused meanwhile
                        raise _NotKept(
                            _error(409, f"A request with the {HEADER} {key!r} was in flight; send it again.")
                        )
                    raise _NotKept(_replay(existing, fingerprint))
                response = view_method(self, request, *args, **kwargs)
                if not 200 <= response.status_code < 300:
                    raise _NotKept(response)
                record.response_status = response.status_code
                record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
                record.save(update_fields=["response_status", "response_body"])
                return response
        except _NotKept as refused:
            return refused.response

    return wrapper
