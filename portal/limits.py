"""How long the free text people type may be, and the one message that says so.

A `TextField` has no length limit in the database, and `max_length` on it only reaches the form. Each
free-text field therefore carries a `TextLengthValidator` too (model `full_clean()` runs it, so the
admin and the services that clean refuse it), and `text_limit_check` runs the same validator in a
service that writes the field without `full_clean()`. The limit lives on the model field; forms read
it with `text_limit` so the two cannot drift.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils.deconstruct import deconstructible

SHORT_TEXT = 2_000  # a justification, comment, reason or note: a few paragraphs
LONG_TEXT = 10_000  # descriptions and instructions IT writes in the admin


@deconstructible
class TextLengthValidator(MaxLengthValidator):
    """Refuses text longer than `limit_value`, naming what is too long and both lengths."""

    def __init__(self, limit_value: int, what: str):
        self.what = what
        super().__init__(
            limit_value, message=f"{what} is too long: at most %(limit_value)s characters (this has %(show_value)s)."
        )

    def __eq__(self, other):
        return isinstance(other, TextLengthValidator) and (self.limit_value, self.what) == (
            other.limit_value,
            other.what,
        )


def limited_text(limit: int, what: str, **kwargs) -> models.TextField:
    """A `TextField` of at most `limit` characters: the form's maxlength and a validator `full_clean()` runs."""
    return models.TextField(max_length=limit, validators=[TextLengthValidator(limit, what)], **kwargs)


def text_limit(model: type[models.Model], field_name: str) -> int:
    """The length limit of a model's free-text field (for the forms that fill it)."""
    return model._meta.get_field(field_name).max_length


def text_limit_message(model: type[models.Model], field_name: str, what: str | None = None) -> str:
    """The form's max_length message, the same words as the model's validator (`what` renames the field)."""
    for validator in model._meta.get_field(field_name).validators:
        if isinstance(validator, TextLengthValidator):
            return validator.message if what is None else validator.message.replace(validator.what, what, 1)
    raise LookupError(f"{model.__name__}.{field_name} has no TextLengthValidator")


def text_limit_error(model: type[models.Model], field_name: str, value: str) -> str | None:
    """The message when `value` is longer than the model's field allows, else None."""
    try:
        model._meta.get_field(field_name).run_validators(value)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return None


def text_limit_check(model: type[models.Model], field_name: str, value: str) -> None:
    """Raises `ValidationError({field_name: message})` when `value` is longer than the field allows."""
    message = text_limit_error(model, field_name, value)
    if message is not None:
        raise ValidationError({field_name: message})
