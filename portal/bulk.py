"""Inserts of thousands of rows (an HR import): the rows `bulk_create` and simple-history would write, faster.

Django's `bulk_create` prepares every value of every row through the field's full conversion chain
(about 20 calls per cell); for the 130,000 rows of a 10,000-person import that chain, not the
database, was most of the time. Here each column's conversion is chosen once: a plain `str`, `int`
or `bool` in a plain text, integer or boolean column (or a foreign key to one) is already what the
driver takes and goes as it is; every other value (dates, JSON, enums, decimals ...) goes through
the field's own `get_db_prep_save`, exactly as `bulk_create` would send it.

- `rows_insert(objs)`: `bulk_create` of unsaved instances (pre_save first, so `auto_now` fields are
  set on the instance too), primary keys read back with `RETURNING` and set on the instances.
- `history_insert(model, objs, ...)`: the history rows simple-history's `bulk_history_create` writes
  for saved instances (every tracked field, `history_date`, `history_type`, `history_user`,
  `history_change_reason`), without building a historical instance per row.
- `values_insert(model, names, rows)`: rows given as tuples of Python values, by `executemany`.

All run inside the caller's transaction and send no signals, like `bulk_create`.
"""

import datetime
import enum

from django.db import connections, models, router
from django.db.models.fields import NOT_PROVIDED
from django.utils import timezone

BATCH = 500

# Column kinds whose Python value the driver takes as it is, when it has exactly this type.
_PLAIN = {
    models.CharField: str,
    models.TextField: str,
    models.EmailField: str,
    models.SlugField: str,
    models.URLField: str,
    models.IntegerField: int,
    models.BigIntegerField: int,
    models.SmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveBigIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.AutoField: int,
    models.BigAutoField: int,
    models.SmallAutoField: int,
    models.BooleanField: bool,
}


def _plain_type(field: models.Field):
    if field.is_relation:
        field = field.target_field
    return _PLAIN.get(type(field))


# Values of these types prepare the same whenever they are equal: their prepared form is kept per
# column (a run's date, the import's timestamp, a choice), not worked out again for every row.
_MEMO_TYPES = (datetime.datetime, datetime.date, enum.Enum)
_MEMO_SIZE = 4096


def _preparer(fields: list[models.Field], connection):
    """A function turning a sequence of Python values (one per field) into the tuple the driver is sent."""
    kinds = [(_plain_type(field), field, {}) for field in fields]

    def prepare(values) -> tuple:
        out = []
        for (plain, field, memo), value in zip(kinds, values, strict=True):
            # A TextChoices member (a str) goes as it is too: CharField's preparation returns it unchanged.
            if (
                value is None
                or (plain is not None and type(value) is plain)
                or (plain is str and isinstance(value, str))
            ):
                out.append(value)
            elif isinstance(value, _MEMO_TYPES):
                key = (type(value), value)
                prepared = memo.get(key, memo)
                if prepared is memo:
                    if len(memo) >= _MEMO_SIZE:
                        memo.clear()
                    prepared = memo[key] = field.get_db_prep_save(value, connection=connection)
                out.append(prepared)
            else:
                out.append(field.get_db_prep_save(value, connection=connection))
        return tuple(out)

    return prepare


def _columns(model, fields: list[models.Field], connection) -> str:
    quote = connection.ops.quote_name
    return f"{quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"


def _copy(cursor, model, fields: list[models.Field], connection, rows) -> None:
    """PostgreSQL: `COPY ... FROM STDIN` the prepared rows (psycopg dumps each value as for a query)."""
    raw = cursor.cursor  # psycopg's own cursor under Django's wrapper
    # Under wrap_database_errors a violated constraint is Django's IntegrityError, as for a query.
    with connection.wrap_database_errors, raw.copy(f"COPY {_columns(model, fields, connection)} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def values_insert(model, names: list[str], rows: list[tuple], *, using: str | None = None) -> int:
    """Insert `rows` (tuples of Python values for the fields `names`, by attname) into `model`'s table.

    `names` must cover every column but an automatic primary key. Values are prepared as
    `bulk_create` prepares them (see the module docstring), then sent by `executemany` (SQLite) or
    `COPY` (PostgreSQL); no instances, no primary keys read back. Returns how many rows were written.
    """
    using = using or router.db_for_write(model)
    connection = connections[using]
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    fields = [by_attname[name] for name in names]
    left_out = [f.attname for f in model._meta.concrete_fields if f.attname not in names and not f.primary_key]
    if left_out:  # a column added later must be filled here too, not silently left to the database
        raise ValueError(f"values_insert into {model._meta.label} gives no value for {', '.join(left_out)}.")
    prepare = _preparer(fields, connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _copy(cursor, model, fields, connection, (prepare(row) for row in rows))
            return len(rows)
        placeholders = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {_columns(model, fields, connection)} VALUES ({placeholders})"  # noqa: S608 - quoted model names
        for start in range(0, len(rows), BATCH):
            cursor.executemany(sql, [prepare(row) for row in rows[start : start + BATCH]])
    return len(rows)


def rows_insert(objs: list[models.Model], *, using: str | None = None) -> list[models.Model]:
    """`Model.objects.bulk_create(objs)` for unsaved instances of one model without a primary key set.

    Fields' `pre_save` runs for each (`auto_now`, `auto_now_add`), related instances must be saved
    (their ids are taken, as `bulk_create` does), and the new primary keys are set on `objs`, in
    the order of the rows: read back with `RETURNING` (SQLite), or taken from the table's sequence
    first and written with `COPY` (PostgreSQL). Returns `objs`.
    """
    if not objs:
        return objs
    model = type(objs[0])
    opts = model._meta
    using = using or router.db_for_write(model)
    connection = connections[using]
    fields = [f for f in opts.concrete_fields if f is not opts.pk]
    if any(f.db_default is not NOT_PROVIDED for f in fields):
        raise NotImplementedError(f"{opts.label} has a db_default field; use bulk_create.")
    with_pre_save = [f for f in fields if type(f).pre_save is not models.Field.pre_save]
    for obj in objs:
        if obj.pk is not None or type(obj) is not model:
            raise ValueError(f"rows_insert takes new {opts.label} rows only.")
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        for field in with_pre_save:
            field.pre_save(obj, add=True)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [quote(opts.db_table), opts.pk.column, len(objs)],
            )
            pks = sorted(row[0] for row in cursor.fetchall())
            for obj, pk in zip(objs, pks, strict=True):
                obj.pk = pk
            with_pk = [opts.pk, *fields]
            prepare = _preparer(with_pk, connection)
            rows = (prepare([getattr(obj, f.attname) for f in with_pk]) for obj in objs)
            _copy(cursor, model, with_pk, connection, rows)
        else:
            if not connection.features.can_return_rows_from_bulk_insert:
                raise NotImplementedError(f"{connection.vendor} cannot return the ids of a bulk insert.")
            prepare = _preparer(fields, connection)
            size = max(1, min(BATCH, connection.ops.bulk_batch_size(fields, objs)))
            head = f"INSERT INTO {_columns(model, fields, connection)} VALUES "  # noqa: S608 - quoted model names
            one = f"({', '.join(['%s'] * len(fields))})"
            for start in range(0, len(objs), size):
                batch = objs[start : start + size]
                params = []
                for obj in batch:
                    params.extend(prepare([getattr(obj, f.attname) for f in fields]))
                cursor.execute(f"{head}{', '.join([one] * len(batch))} RETURNING {quote(opts.pk.column)}", params)
                pks = [row[0] for row in cursor.fetchall()]
                if len(pks) != len(batch):
                    raise RuntimeError(f"{opts.label}: {len(batch)} rows inserted, {len(pks)} ids returned.")
                for obj, pk in zip(batch, pks, strict=True):
                    obj.pk = pk
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using
    return objs


def history_insert(
    model, objs: list[models.Model], *, acting_user, history_type: str = "+", using: str | None = None
) -> int:
    """The history rows of saved `objs` (instances of `model`), as simple-history writes them on save.

    Each row has every tracked field's current value, `history_date` (now: one time for the rows of one call),
    `history_type` ("+" created, "~" changed), `history_user` (`acting_user`, or none for the
    system) and no change reason. A history model with any other field is refused rather than
    written with it empty. Returns how many rows were written.
    """
    history = model.history.model
    tracked = [f.attname for f in history.tracked_fields]
    extra = {"history_date", "history_change_reason", "history_type", "history_user_id"}
    names = [f.attname for f in history._meta.concrete_fields if f is not history._meta.pk]
    unknown = set(names) - set(tracked) - extra
    if unknown:
        raise NotImplementedError(f"{history._meta.label} has fields history_insert does not fill: {sorted(unknown)}.")
    user_id = acting_user.pk if getattr(acting_user, "pk", None) else None  # as `set_history_user`
    order = tracked + ["history_date", "history_change_reason", "history_type", "history_user_id"]
    now = timezone.now()
    rows = []
    for obj in objs:
        if obj.pk is None:
            raise ValueError(f"Save the {model._meta.verbose_name} before writing its history.")
        rows.append((*[getattr(obj, name) for name in tracked], now, None, history_type, user_id))
    return values_insert(history, order, rows, using=using)
