"""Form and input helpers shared by the self-service pages and the admin."""

import re

from django import forms
from django.core.exceptions import ValidationError

# ASCII digits only (`str.isdigit` and `str.isdecimal` accept "²" or "٣", which `int()` refuses or reads
# as another number), at most 18 of them, so the number fits a 64-bit primary key on every backend.
_ID = re.compile(r"[0-9]{1,18}", re.ASCII)


def parse_id(value: str | None) -> int | None:
    """The primary key typed in a query string, search box or form field, or None when it is not one."""
    if value is None or not _ID.fullmatch(value):
        return None
    return int(value)


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's refusal on the form: errors naming a form field go next to it, the rest on top."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            target = field if field in form.fields else None
            for message in errors:
                form.add_error(target, message)
    else:
        for message in exc.messages:
            form.add_error(None, message)


class DateInput(forms.DateInput):
    input_type = "date"
