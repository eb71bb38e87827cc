"""Shared helpers for the `seed_demo` and `seed_scale` commands.

Seed data is written in bulk, never row by row: `bulk_create_with_history` writes the rows and
one simple-history row each (history type "+"), so the admin's history pages and the auditor see
where every row came from. Timestamps that Django fills in by itself (`auto_now_add`) are given
explicit values while seeding, so a demo company hired years ago does not look created today.

The commands import accounts and assets (demo may import every app); nothing imports this module
except the seed commands, their tests and the benchmarks.
"""

import contextlib
import datetime
import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.db.models import Max
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from portal.fields import blind_index_fields

DEFAULT_BATCH_SIZE = 2000


def history_models() -> list[type[models.Model]]:
    """Every simple-history historical model (useful to count history rows)."""
    from django.apps import apps

    return [m for m in apps.get_models() if m.__name__.startswith("Historical") and hasattr(m, "history_id")]


def bulk_insert(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reason: str = "",
    user=None,
    date: datetime.datetime | None = None,
) -> list[models.Model]:
    """Insert `objs` and one "+" history row each, in batches; return the objects with their ids.

    A per-object `_history_date` (or `_history_user`) set by the caller wins over `date`/`user`.
    """
    if not objs:
        return []
    return bulk_create_with_history(
        list(objs),
        model,
        batch_size=batch_size,
        default_user=user,
        default_change_reason=reason,
        default_date=date,
    )


def bulk_change(
    model: type[models.Model],
    objs: Sequence[models.Model],
    fields: list[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reason: str = "",
    user=None,
    date: datetime.datetime | None = None,
) -> None:
    """Update `fields` of `objs` in bulk and write one "~" history row each."""
    if objs:
        bulk_update_with_history(
            list(objs),
            model,
            fields,
            batch_size=batch_size,
            default_user=user,
            default_change_reason=reason,
            default_date=date,
        )


@contextlib.contextmanager
def explicit_timestamps(*model_fields: tuple[type[models.Model], str]) -> Iterator[None]:
    """Let the caller set `auto_now` / `auto_now_add` fields while seeding (restored afterwards)."""
    saved = []
    for model, name in model_fields:
        field = model._meta.get_field(name)
        saved.append((field, field.auto_now, field.auto_now_add))
        field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ascii_slug(*parts: str, sep: str = ".") -> str:
    """`"Zoë", "Müller-Lüdenscheidt"` → `"zoe.muller-ludenscheidt"` (for work emails)."""
    cleaned = []
    for part in parts:
        text = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode().lower()
        cleaned.append("".join(ch for ch in text if ch.isalnum() or ch == "-"))
    return sep.join(p for p in cleaned if p)


def aware(day: datetime.date, hour: int = 9, minute: int = 0) -> datetime.datetime:
    """A timezone-aware (UTC) datetime on `day`."""
    return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=datetime.UTC)


def count_rows(models_: Iterable[type[models.Model]]) -> dict[str, int]:
    """Row count per model label (used to show that a second seed run writes nothing)."""
    return {m._meta.label: m._default_manager.count() for m in models_}


class RawInserter:
    """Fast path for millions of rows: INSERT with `executemany`, one history row per row.

    `bulk_insert` spends most of its time in Django's per-value preparation; for the big tables of
    `seed_scale` this writes plain tuples instead. Rows are dicts of attnames (foreign keys as `*_id`);
    missing fields take their default. Primary keys are handed out by `allocate` up front (so rows
    can point at each other before they are written); on PostgreSQL the id sequence is moved past
    them by `finish`. For models whose fields are plain values, dates, times, durations and JSON
    (JSON values are written as their text, which both databases parse).
    """

    def __init__(self, model: type[models.Model], *, reason: str = "", date: datetime.datetime | None = None):
        self.model = model
        self.ops = connection.ops
        self.fields = list(model._meta.concrete_fields)
        self.columns = [f.column for f in self.fields]
        now = timezone.now()
        self.defaults = {}
        for f in self.fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                self.defaults[f.attname] = now
            elif f.has_default():
                self.defaults[f.attname] = f.get_default()
            elif f.empty_strings_allowed and not f.null:
                self.defaults[f.attname] = ""
            else:
                self.defaults[f.attname] = None
        self.converters = [self._converter(f) for f in self.fields]
        self.history = getattr(model, "history", None)
        if self.history is not None:
            hmodel = self.history.model
            hfields = [f for f in hmodel._meta.concrete_fields if f.attname != "history_id"]
            self.h_columns = [f.column for f in hfields]
            tracked = {f.attname for f in hmodel.tracked_fields}
            positions = {f.attname: n for n, f in enumerate(self.fields)}
            extra = {
                "history_date": self.ops.adapt_datetimefield_value(date or now),
                "history_change_reason": reason,
                "history_type": "+",
                "history_user_id": None,
            }
            # For each history column: ("row", position in the row tuple) or ("const", value).
            self.h_plan = [
                ("row", positions[f.attname]) if f.attname in tracked else ("const", extra.get(f.attname))
                for f in hfields
            ]
        self.next_id = (model._default_manager.aggregate(m=Max("pk"))["m"] or 0) + 1
        self.max_written = 0

    def _converter(self, field):
        internal = field.get_internal_type()
        if getattr(field, "encrypted", False):  # personal data: encrypted like any save (blank stays blank)
            return lambda v, f=field: f.get_db_prep_value(v, connection)
        if internal == "DateTimeField":
            adapt = self.ops.adapt_datetimefield_value
        elif internal == "DateField":
            adapt = self.ops.adapt_datefield_value
        elif internal == "JSONField":
            return lambda v: None if v is None else json.dumps(v, cls=DjangoJSONEncoder)
        elif internal == "DurationField":
            return lambda v, f=field: None if v is None else f.get_db_prep_value(v, connection)
        elif internal == "DecimalField":
            return lambda v, f=field: (
                None if v is None else self.ops.adapt_decimalfield_value(v, f.max_digits, f.decimal_places)
            )
        else:
            return None
        cache: dict = {}

        def convert(value):
            if value is None:
                return None
            try:
                return cache[value]
            except KeyError:
                cache[value] = result = adapt(value)
                return result

        return convert

    def allocate(self) -> int:
        """The next primary key (rows must carry it as `id`)."""
        pk, self.next_id = self.next_id, self.next_id + 1
        return pk

    def insert(self, rows: list[dict], *, batch_size: int = 5000) -> int:
        """Write `rows` (each with its allocated `id`) and their history rows."""
        if not rows:
            return 0
        defaults, attnames = self.defaults, [f.attname for f in self.fields]
        indexes = blind_index_fields(self.model)
        tuples = []
        for row in rows:
            if indexes:  # each blind index from its (plaintext) source, as a save computes it
                row = {**row, **{f.attname: f.index_of(row.get(f.source, "")) for f in indexes}}
            values = []
            for name, convert in zip(attnames, self.converters, strict=True):
                value = row[name] if name in row else defaults[name]
                values.append(convert(value) if convert is not None else value)
            tuples.append(tuple(values))
        plan = self.h_plan if self.history is not None else None
        history_rows = (
            [tuple(t[x] if kind == "row" else x for kind, x in plan) for t in tuples] if plan is not None else []
        )
        self._write(self.model._meta.db_table, self.columns, tuples, batch_size)
        if plan is not None:
            self._write(self.history.model._meta.db_table, self.h_columns, history_rows, batch_size)
        pk = self.model._meta.pk.attname
        self.max_written = max(self.max_written, max(row[pk] for row in rows))
        return len(rows)

    def _write(self, table: str, columns: list[str], rows: list[tuple], batch_size: int) -> None:
        quoted = f"{self.ops.quote_name(table)} ({', '.join(self.ops.quote_name(c) for c in columns)})"
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # COPY: several times faster than INSERT there
                with cursor.cursor.copy(f"COPY {quoted} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            sql = f"INSERT INTO {quoted} VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
            for batch in chunks(rows, batch_size):
                cursor.executemany(sql, batch)

    def finish(self) -> None:
        """Move PostgreSQL's id sequence past the ids written here (SQLite needs nothing)."""
        statements = self.ops.sequence_reset_sql(no_style(), [self.model])
        if statements:
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)
