"""Every refusal as JSON with a `detail` sentence in plain words (and `errors` per field when there are some).

Services refuse with Django's `ValidationError`; DRF would let it through as a 500, so it is turned
into a 400 here, with the service's own message.
"""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(errors) -> list[str]:
    if isinstance(errors, dict):
        return [
            f"{field}: {message}" if field != "non_field_errors" else message
            for field, value in errors.items()
            for message in _flatten(value)
        ]
    if isinstance(errors, list | tuple):
        return [m for item in errors for m in _flatten(item)]
    return [str(errors)]


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()  # one answer for unknown and not-yours, naming no model
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(dict(exc.message_dict))
        else:
            exc = exceptions.ValidationError({"non_field_errors": exc.messages})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.Throttled):
        response.data = {
            "detail": f"More than {settings.PORTAL_API_REQUESTS_PER_MINUTE} requests a minute with this token; "
            f"wait {exc.wait} seconds (see Retry-After)."
        }
    elif isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        messages = _flatten(errors)
        response.data = {"detail": " ".join(messages) or "The request is not valid.", "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif not isinstance(response.data, dict) or "detail" not in response.data:
        response.data = {"detail": " ".join(_flatten(response.data))}
    return response
