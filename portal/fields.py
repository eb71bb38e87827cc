"""Model fields for sensitive values: encrypted at rest (`portal.crypto`), with a keyed blind index beside them.

The Python value of an encrypted field is always the plaintext: it is encrypted only on the way to the
database (`get_db_prep_value`) and decrypted on the way back (`from_db_value`), so a value is never
encrypted twice and ciphertext is never handed out as data (a value that does not decrypt raises).
The column is `text` whatever the plaintext's limit (`max_length` limits the plaintext, in forms and
`full_clean()`). An encrypted column cannot be searched: only `isnull` and `= ''` work, any other
lookup raises `FieldError` naming the blind index to use instead.
"""

from __future__ import annotations

from django import forms
from django.core import validators
from django.core.exceptions import FieldError
from django.db import models
from django.db.models.lookups import Exact

from portal import crypto


class _BlankOnlyExact(Exact):
    """`field = ''` (is it blank?): the one equality an encrypted column can answer."""

    def get_prep_lookup(self):
        if self.rhs not in ("", None):
            raise FieldError(
                f"{self.lhs.output_field.purpose} is encrypted: equality works only through its blind index "
                "(e.g. `personal_email_index=employee_personal_email_index(value)`), or `= ''` for blank."
            )
        return super().get_prep_lookup()


class EncryptedTextField(models.TextField):
    """Text encrypted with AES-256-GCM under `PORTAL_FIELD_KEYS`; `purpose` names the column in the
    ciphertext's associated data (keep it when renaming the field, or the stored values stop decrypting)."""

    encrypted = True

    def __init__(self, *args, purpose: str = "", **kwargs):
        if not purpose:
            raise TypeError("An encrypted field needs a purpose, e.g. 'accounts.employee.personal_email'.")
        self.purpose = purpose
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    @property
    def validators(self):
        found = super().validators
        if self.max_length is not None and not any(isinstance(v, validators.MaxLengthValidator) for v in found):
            found = [*found, validators.MaxLengthValidator(self.max_length)]
        return found

    def get_lookup(self, lookup_name):
        if lookup_name == "exact":
            return _BlankOnlyExact
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise FieldError(
            f"{self.purpose} is encrypted: it cannot be searched with `{lookup_name}` (only an exact match through "
            "its blind index)."
        )

    def get_transform(self, lookup_name):
        raise FieldError(f"{self.purpose} is encrypted: `{lookup_name}` cannot be applied to it in SQL.")

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.decrypt(value, purpose=self.purpose)

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(value, purpose=self.purpose)


class EncryptedCharField(EncryptedTextField):
    """An encrypted one-line value: a text input in forms, `max_length` characters of plaintext."""

    def formfield(self, **kwargs):
        return models.Field.formfield(self, **{"form_class": forms.CharField, "max_length": self.max_length, **kwargs})


class EncryptedEmailField(EncryptedCharField):
    """An encrypted email address (validated as `EmailField` is)."""

    default_validators = [validators.validate_email]

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": forms.EmailField, **kwargs})


class BlindIndexField(models.CharField):
    """The keyed HMAC (`PORTAL_BLIND_INDEX_KEY`) of the normalised value of the encrypted field `source`,
    computed on every save that writes the row or `source` (`pre_save`). Empty when the source is empty.
    Not editable; a `QuerySet.update()` of the source must set it too (`portal.crypto.blind_index`)."""

    def __init__(self, *args, source: str = "", normaliser: str = "text", **kwargs):
        if not source or normaliser not in crypto.NORMALISERS:
            raise TypeError("A blind index needs its source field and a normaliser (email, phone, text).")
        self.source, self.normaliser = source, normaliser
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, normaliser=self.normaliser)
        for key, default in (("max_length", 64), ("blank", True), ("editable", False), ("db_index", True)):
            if kwargs.get(key) == default:
                kwargs.pop(key)
        return name, path, args, kwargs

    def index_of(self, value: str) -> str:
        """The index of a plaintext value of the source field (what to filter this column by)."""
        source = self.model._meta.get_field(self.source)
        return crypto.blind_index(value, purpose=source.purpose, normalise=crypto.NORMALISERS[self.normaliser])

    def pre_save(self, model_instance, add):
        value = self.index_of(getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value


def blind_index_fields(model) -> list[BlindIndexField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]


def encrypted_fields(model) -> list[EncryptedTextField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
