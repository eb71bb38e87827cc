"""Base classes for CSV/XLSX import and export (django-import-export 4.x), shared by every app.

`FormulaSafeResource` keeps exported text from running as a spreadsheet formula; `PortalResource`
adds an all-or-nothing, validated and attributed import; the widgets read natural keys, ISO dates
and comma-separated names the way HR files write them. `AuditEventResource` exports the audit log.
"""

import datetime

from django.core.exceptions import NON_FIELD_ERRORS, MultipleObjectsReturned, ValidationError
from django.db import models
from django.db.models.fields import NOT_PROVIDED
from import_export import fields, resources, widgets

from portal import scoping
from portal.audit import audit_record
from portal.auditsentences import describe, describe_one, sentence_text
from portal.history import set_history_user
from portal.models import AuditEvent


class NaturalKeyWidget(widgets.ForeignKeyWidget):
    """A foreign key written in files as the related row's natural key (a code, a number, a name).

    An unknown or ambiguous key raises `ValueError`, which the resource reports as
    a validation error on this column of this row (not as a crash of the import).
    """

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, str):
            value = value.strip()
        if isinstance(value, float) and value.is_integer():  # spreadsheets turn "1001" into 1001.0
            value = int(value)
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            raise ValueError(f"No {self.model._meta.verbose_name} with {self._label()} {value!r}.")
        except MultipleObjectsReturned:
            raise ValueError(f"More than one {self.model._meta.verbose_name} has {self._label()} {value!r}.")

    def _label(self) -> str:
        return self.model._meta.get_field(self.field).verbose_name


class IsoDateWidget(widgets.DateWidget):
    """A date as YYYY-MM-DD (spreadsheet date cells work too), with an error that says so."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, datetime.datetime):
            return value.date()
        try:
            return super().clean(value, row, **kwargs)
        except ValueError:
            raise ValueError(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-01-31.")


class NamesListWidget(widgets.Widget):
    """A JSON list of names, written in files as comma-separated text: "user, admin"."""

    def clean(self, value, row=None, **kwargs):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, list):
            return value
        return [part.strip() for part in str(value).split(",") if part.strip()]

    def render(self, value, obj=None, **kwargs):
        return ", ".join(value or [])


#: A cell starting with one of these is read by spreadsheets as a formula (or, for tab and
#: carriage return, may be turned into one): OWASP's CSV-injection list.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
TEXT_MARK = "'"


def formula_escape(value: str) -> str:
    """`value` as spreadsheet text: a leading `'` when it (after any leading `'`) starts a formula."""
    return TEXT_MARK + value if value.lstrip(TEXT_MARK).startswith(FORMULA_TRIGGERS) else value


def formula_unescape(value: str) -> str:
    """The inverse of `formula_escape`: drops the one `'` it adds, and nothing else."""
    if value.startswith(TEXT_MARK) and value.lstrip(TEXT_MARK).startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value


class FormulaSafeResource(resources.ModelResource):
    """Base of every Portal resource: no exported cell is ever a live formula.

    Export: every text value starting with `=`, `+`, `-`, `@`, tab or carriage return gets a
    leading `'` (OWASP's CSV-injection advice), in CSV and XLSX alike, so a person named
    `=HYPERLINK(...)` is text in IT's spreadsheet. Numbers (number widgets: `-1` stays a number,
    also when CSV writes it as text) and dates are left alone. A value that already starts with
    `'` followed by such a character gets one more `'`, so the rule can be undone exactly.

    Import: a text cell is read back through `formula_unescape`, which removes exactly the `'`
    the export added. Importing a file Portal exported gives back the same values, `'=x` included
    (exported as `''=x`). A hand-written cell `'=x` is read as `=x`: the quote is taken as the
    spreadsheet's "this is text" mark, which is what it almost always means. (XLSX is XML, which
    reads any bare carriage return back as a line feed: that is the format, not this rule.)
    """

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        if isinstance(value, str) and not isinstance(field.widget, widgets.NumberWidget):
            return formula_escape(value)
        return value

    def before_import_row(self, row, **kwargs):
        for column, value in row.items():
            if isinstance(value, str):
                row[column] = formula_unescape(value)
        super().before_import_row(row, **kwargs)


class PortalResource(FormulaSafeResource):
    """Base for Portal's importable resources: formula-safe, all-or-nothing, validated, attributed.

    - `clean_model_instances`: every row goes through the model's `full_clean()`,
      which checks lengths (SQLite would silently store an over-long value),
      choices, `clean()` rules, uniqueness and constraints.
    - `import_data` always runs in a transaction with `rollback_on_validation_errors`,
      so one invalid row rolls back all rows, also when called outside the admin
      (the admin's confirm step re-runs the import and could meet new errors).
    - Two rows of one file with the same natural key are an error on the second
      (without this check the second row would silently update the first).
    """

    class Meta:
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    @classmethod
    def widget_from_django_field(cls, f, default=widgets.Widget):
        if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField):
            return IsoDateWidget
        return super().widget_from_django_field(f, default)

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None, **kwargs):
        kwargs["rollback_on_validation_errors"] = True
        return super().import_data(dataset, dry_run=dry_run, raise_errors=raise_errors, use_transactions=True, **kwargs)

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        # A blank cell for a field with a model default (status, employment type ...) means the
        # default on a new row, but "keep what it is" on an existing one: an HR file with an empty
        # status column must not send everyone back to pre-hire.
        if (
            instance.pk is not None
            and field.default is not NOT_PROVIDED
            and field.column_name in row
            and _normalise_key(row[field.column_name]) == ""
        ):
            return
        super().import_field(field, instance, row, is_m2m=is_m2m, **kwargs)

    def after_init_instance(self, instance, new, row, **kwargs):
        # A scoped importer (accounts.AdminScope) may not update a row outside their scope.
        user = kwargs.get("user")
        if not new and not scoping.allows(instance, user):
            raise ValidationError({NON_FIELD_ERRORS: [_outside(instance, user)]})
        super().after_init_instance(instance, new, row, **kwargs)

    def import_instance(self, instance, row, **kwargs):
        # ... nor write a row that would be outside it (an asset kept at another office).
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        user = kwargs.get("user")
        if not errors and not scoping.allows(instance, user):
            errors[NON_FIELD_ERRORS] = [scoping.refusal(instance, user)]
        if errors:
            raise ValidationError(errors)

    def before_import(self, dataset, **kwargs):
        self._rows_by_key: dict[tuple, int] = {}
        super().before_import(dataset, **kwargs)

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        id_fields = [self.fields[name] for name in self.get_import_id_fields()]
        key = tuple(_normalise_key(row.get(field.column_name)) for field in id_fields)
        if any(part == "" for part in key):
            return  # a missing key is reported by full_clean on that column
        row_number = kwargs.get("row_number")
        first = self._rows_by_key.setdefault(key, row_number)
        if first != row_number:
            columns = ", ".join(field.column_name for field in id_fields)
            raise ValidationError(
                {
                    id_fields[0].attribute: (
                        f"Duplicate: row {first} of this file has the same {columns} ({', '.join(key)}); "
                        "each must appear only once."
                    )
                }
            )

    def before_save_instance(self, instance, row, **kwargs):
        super().before_save_instance(instance, row, **kwargs)
        instance._import_created = instance.pk is None
        user = kwargs.get("user")
        if getattr(user, "pk", None):
            set_history_user(instance, user)

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        if kwargs.get("dry_run"):
            return
        audit_record(
            action=AuditEvent.Action.IMPORT,
            target=instance,
            acting_user=kwargs.get("user"),
            detail={
                "file": kwargs.get("file_name") or "",
                "row": kwargs.get("row_number"),
                "created": getattr(instance, "_import_created", False),
            },
        )


class AuditEventResource(FormulaSafeResource):
    """The audit log's export: every column of the event, its readable values and its place in the chain.

    The admin offers no import.
    """

    event = fields.Field(column_name="event", readonly=True)
    actor_repr = fields.Field(attribute="actor_repr", column_name="actor_repr", readonly=True)
    target_repr = fields.Field(attribute="target_repr", column_name="target_repr", readonly=True)
    detail = fields.Field(attribute="detail", column_name="detail", readonly=True, widget=widgets.JSONWidget())

    # Sentences are written for this many events at a time (a constant number of queries per chunk).
    SENTENCE_CHUNK = 1000

    class Meta:
        model = AuditEvent
        fields = (
            "id", "seq", "created_at", "event", "actor", "actor_repr", "action", "target_type", "target_id",
            "target_repr", "detail", "prev_hash", "hash",
        )  # fmt: skip
        export_order = fields

    def iter_queryset(self, queryset):
        chunk = []
        for event in super().iter_queryset(queryset):
            chunk.append(event)
            if len(chunk) >= self.SENTENCE_CHUNK:
                yield from self._with_sentences(chunk)
                chunk = []
        yield from self._with_sentences(chunk)

    @staticmethod
    def _with_sentences(chunk):
        pieces = describe(chunk)
        for event in chunk:
            event._sentence_text = sentence_text(pieces[event.pk])
            yield event

    def dehydrate_event(self, event):
        text = getattr(event, "_sentence_text", None)
        if text is None:
            text = sentence_text(describe_one(event))
        return text


def _outside(instance, user) -> str:
    return f"{instance} is outside your scope ({scoping.scope_description(user)}): ask an IT admin to import this row."


def _normalise_key(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
