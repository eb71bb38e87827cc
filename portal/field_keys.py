"""Re-encryption of the encrypted columns under the current key, the blind indexes recomputed, and the
check that the keys configured read what the database holds. Every model with an encrypted field
(`portal.fields`) is covered, history tables included, without naming any. Imports no Portal app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from django.apps import apps
from django.core import checks
from django.db import DatabaseError, connection, models, transaction

from portal import crypto
from portal.fields import BlindIndexField, EncryptedTextField, blind_index_fields, encrypted_fields


def encrypted_models() -> Iterator[tuple[type[models.Model], list[EncryptedTextField]]]:
    """(model, its encrypted fields) for every concrete model that has any (history models included)."""
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = encrypted_fields(model)
        if fields:
            yield model, fields


def _stale_where(fields: list[EncryptedTextField], current: str) -> tuple[str, list[str]]:
    """SQL: a row holding a value (in any of `fields`) that the current key did not write."""
    quote = connection.ops.quote_name
    parts, params = [], []
    for field in fields:
        parts.append(f"({quote(field.column)} <> '' AND {quote(field.column)} NOT LIKE %s)")
        params.append(f"{crypto.PREFIX}:{current}:%")
    return " OR ".join(parts), params


def stale_count(model, fields) -> int:
    """How many rows of `model` hold a value not written with the current key."""
    where, params = _stale_where(fields, crypto.field_keys().current)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {where}", params)  # noqa: S608
        return cursor.fetchone()[0]


def _rotate_batch(model, fields, current: str, after_pk, batch_size: int) -> tuple[int, object]:
    """Re-encrypt up to `batch_size` stale rows of `model` after `after_pk`, in one transaction.
    Returns (rows re-encrypted, the last primary key seen, or None when none was left)."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    where, params = _stale_where(fields, current)
    columns = ", ".join(quote(f.column) for f in fields)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {pk}, {columns} FROM {table} WHERE {pk} > %s AND ({where}) ORDER BY {pk} LIMIT %s{lock}",  # noqa: S608
            [after_pk, *params, batch_size],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0, None
        updates = []
        for row in rows:
            values = []
            for field, stored in zip(fields, row[1:], strict=True):
                if stored and crypto.token_key_id(stored) != current:
                    # Decrypts with the old key it names (raises, naming it, if that key is gone).
                    stored = crypto.encrypt(crypto.decrypt(stored, purpose=field.purpose), purpose=field.purpose)
                values.append(stored)
            updates.append([*values, row[0]])
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {pk} = %s", updates)  # noqa: S608
    return len(rows), rows[-1][0]


def field_keys_rotate(
    *,
    batch_size: int = 1000,
    progress: Callable[[str], None] | None = None,
    after_batch: Callable[[type[models.Model], int], None] | None = None,
) -> dict[str, int]:
    """Re-encrypt every value of every encrypted column (base and history tables) that the current key of
    PORTAL_FIELD_KEYS did not write, `batch_size` rows a transaction.

    Resumable: rows are picked by the key id in their tokens, so after an interruption a second run
    re-encrypts only what is left, and every row decrypts in between (the old keys still read).
    History rows are re-encrypted in place (same values, no new history row, `updated_at` unchanged).
    Returns the rows re-encrypted per model label.
    """
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    current = crypto.field_keys().current
    done: dict[str, int] = {}
    for model, fields in encrypted_models():
        label = model._meta.label
        total = stale_count(model, fields)
        done[label] = 0
        if progress:
            progress(f"{label}: {total} rows not written with the key {current!r}.")
        after = 0 if isinstance(model._meta.pk, models.AutoField | models.BigAutoField) else ""
        while True:
            count, last = _rotate_batch(model, fields, current, after, batch_size)
            if not count:
                break
            done[label] += count
            after = last
            if progress:
                progress(f"{label}: {done[label]} of {total} re-encrypted.")
            if after_batch:
                after_batch(model, count)
    return done


def blind_indexes_rebuild(*, batch_size: int = 1000, progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Recompute every blind index (after PORTAL_BLIND_INDEX_KEY changed), `batch_size` rows a transaction.
    Idempotent: a second run writes the same values. Returns the rows written per model label."""
    done: dict[str, int] = {}
    for model in apps.get_models():
        indexes: list[BlindIndexField] = blind_index_fields(model)
        if not indexes:
            continue
        label = model._meta.label
        done[label] = 0
        sources = [index.source for index in indexes]
        last = 0
        while True:
            with transaction.atomic():
                rows = list(
                    model._base_manager.filter(pk__gt=last)
                    .order_by("pk")
                    .select_for_update()
                    .values_list("pk", *sources)[:batch_size]
                )
                if not rows:
                    break
                for pk, *values in rows:
                    model._base_manager.filter(pk=pk).update(
                        **{index.name: index.index_of(value) for index, value in zip(indexes, values, strict=True)}
                    )
            done[label] += len(rows)
            last = rows[-1][0]
            if progress:
                progress(f"{label}: {done[label]} rows re-indexed.")
    return done


def field_keys_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """The keys configured read the database: for every encrypted column, no value was written with a key
    PORTAL_FIELD_KEYS does not list, and one value per listed key decrypts. Runs at
    start-up (`runserver`, `qcluster`, `migrate`, `check`); skipped while the tables do not exist yet."""
    errors: list[checks.CheckMessage] = []
    keys = crypto.field_keys()
    quote = connection.ops.quote_name
    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor == "sqlite" and name != ":memory:" and "mode=memory" not in name and not Path(name).exists():
        return []  # no database yet (a fresh clone's `makemigrations --check`): nothing to read, none created
    try:
        tables = set(connection.introspection.table_names())
    except DatabaseError:
        return []
    for model, fields in encrypted_models():
        if model._meta.db_table not in tables:
            continue
        for field in fields:
            column, table = quote(field.column), quote(model._meta.db_table)
            known = " AND ".join([f"{column} NOT LIKE %s"] * len(keys.ids()))
            try:
                with connection.cursor() as cursor:
                    # Tokens only: plaintext before the encrypting migration must not stop `migrate` itself
                    # (it converts them); one left after it raises when read.
                    cursor.execute(
                        f"SELECT {column} FROM {table} WHERE {column} LIKE %s AND {known} LIMIT 1",  # noqa: S608
                        [f"{crypto.PREFIX}:%", *(f"{crypto.PREFIX}:{key_id}:%" for key_id in keys.ids())],
                    )
                    foreign = cursor.fetchone()
                    samples = []
                    for key_id in keys.ids():
                        cursor.execute(
                            f"SELECT {column} FROM {table} WHERE {column} LIKE %s LIMIT 1",  # noqa: S608
                            [f"{crypto.PREFIX}:{key_id}:%"],
                        )
                        samples += [row[0] for row in cursor.fetchall()]
            except DatabaseError:
                return errors  # a column not migrated yet: `migrate` will add it
            label = f"{model._meta.label}.{field.name}"
            if foreign is not None:
                key_id = crypto.token_key_id(foreign[0])
                what = f"written with the key {key_id!r}" if key_id else "in a damaged encrypted form"
                errors.append(
                    checks.Error(
                        f"{label} holds values {what}, which PORTAL_FIELD_KEYS cannot read.",
                        hint="Add the old key to PORTAL_FIELD_KEYS after the current one.",
                        id="portal.E101",
                    )
                )
            for stored in samples:
                try:
                    crypto.decrypt(stored, purpose=field.purpose)
                except crypto.FieldDecryptionError as exc:
                    errors.append(checks.Error(f"{label}: {exc}", id="portal.E102"))
    return errors
