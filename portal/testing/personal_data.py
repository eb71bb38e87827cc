"""Find personal data anywhere in the database: every column of every table, encoded columns decoded.

    from portal.testing.personal_data import personal_data_scan

    findings = personal_data_scan(["Zephyrine Quillfeather", "zq@example.com"])
    assert not findings, "\\n".join(findings)     # ["accounts_employee.first_name: 'Zephyrine ...' (1 row)"]

Written independently of the retention purge on purpose: it does not ask Django's models which
columns hold text (the purge does), it asks the database itself (`introspection.table_names()` and
every column of each table, cast to text, matched case-insensitively with LIKE). So a table or a
column the purge does not know about is still searched. Columns whose stored form hides the text
are decoded first and searched in Python:

- django-q2's `django_q_task.args / kwargs / result` (pickled) and `django_q_ormq.payload`
  (signed pickle), through django-q2's own model field and signing module;
- `django_session.session_data`, through the session store's `decode`.

JSON columns are searched in their stored text and in their JSON-escaped form (SQLite stores
`json.dumps` output, which escapes non-ASCII characters).

Encrypted values (`portal.crypto` tokens, `pf1:...`) are found in any column of any table by their
form, decrypted (under each purpose an encrypted field declares) and searched; a token that decrypts
under none is a finding itself. The values' blind indexes (each `portal.fields.BlindIndexField`'s
purpose and normaliser) are searched for too, so an index left behind is found.
"""

from __future__ import annotations

import json
import re

from django.db import connection

# table -> columns whose stored text is an encoding of the data, searched decoded instead.
ENCODED_COLUMNS = {
    "django_q_task": ("args", "kwargs", "result"),
    "django_q_ormq": ("payload",),
    "django_session": ("session_data",),
}


def _forms(value: str) -> list[str]:
    """The value as written, and as it appears inside a JSON string (escaped)."""
    escaped = json.dumps(value)[1:-1]
    return [value] if escaped == value else [value, escaped]


def _like(value: str) -> str:
    return "%" + value.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _decoded_rows(table: str) -> list[tuple[str, str]]:
    """(column, decoded text) for each row of an encoded table."""
    rows: list[tuple[str, str]] = []
    if table == "django_q_task":
        from django_q.models import Task

        for task in Task.objects.all():
            rows += [(name, repr(getattr(task, name))) for name in ENCODED_COLUMNS[table]]
    elif table == "django_q_ormq":
        from django_q.models import OrmQ

        for queued in OrmQ.objects.all():
            try:
                rows.append(("payload", repr(queued.task())))
            except Exception as exc:  # noqa: BLE001 - an undecodable payload is reported as such
                rows.append(("payload", f"<undecodable: {exc}> {queued.payload}"))
    elif table == "django_session":
        from django.contrib.sessions.backends.db import SessionStore
        from django.contrib.sessions.models import Session

        for session in Session.objects.all():
            rows.append(("session_data", repr(SessionStore().decode(session.session_data))))
    return rows


def _purposes() -> list[tuple[str, str]]:
    """(purpose, normaliser) of every encrypted field; normaliser "" when it has no blind index."""
    from django.apps import apps

    from portal.fields import BlindIndexField, EncryptedTextField

    found: dict[str, set[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                found.setdefault(field.purpose, set())
            if isinstance(field, BlindIndexField):
                found.setdefault(model._meta.get_field(field.source).purpose, set()).add(field.normaliser)
    return [(purpose, normaliser) for purpose, kinds in found.items() for normaliser in sorted(kinds) or [""]]


def _decrypted(token: str, purposes: list[str]) -> str | None:
    from portal import crypto

    for purpose in purposes:
        try:
            return crypto.decrypt(token, purpose=purpose)
        except crypto.FieldDecryptionError:
            continue
    return None


def _encrypted_findings(cursor, table: str, columns: list[str], values: list[str]) -> list[str]:
    from portal import crypto

    quote = connection.ops.quote_name
    purposes = _purposes()
    findings = []
    for column in columns:
        cursor.execute(
            f"SELECT CAST({quote(column)} AS TEXT) FROM {quote(table)} WHERE CAST({quote(column)} AS TEXT) LIKE %s",  # noqa: S608
            [f"%{crypto.PREFIX}:%"],
        )
        texts = []
        for (stored,) in cursor.fetchall():
            for token in re.findall(r"pf1:[A-Za-z0-9]{1,16}:[A-Za-z0-9_-]+", stored):
                plain = _decrypted(token, list(dict.fromkeys(p for p, _ in purposes)))
                if plain is None:
                    findings.append(f"{table}.{column} (encrypted): a value that decrypts under no purpose")
                else:
                    texts.append(plain)
        for value in values:
            hits = [t for t in texts if value.lower() in t.lower()]
            if hits:
                findings.append(f"{table}.{column} (decrypted): {value!r} ({len(hits)} rows)")
    return findings


def blind_indexes_of(values: list[str]) -> list[str]:
    """Every blind index any of `values` would have, under every indexed purpose."""
    from portal import crypto

    out = []
    for purpose, normaliser in _purposes():
        if normaliser:
            for value in values:
                index = crypto.blind_index(value, purpose=purpose, normalise=crypto.NORMALISERS[normaliser])
                if index:
                    out.append(index)
    return out


def personal_data_scan(values: list[str]) -> list[str]:
    """Every `table.column` holding any of `values` (case-insensitive substring), with an example; [] when none.

    Searches every column of every table in the default database (`ENCODED_COLUMNS` decoded).
    Empty values are ignored.
    """
    values = [v for v in values if v]
    plain_values = values
    values = values + blind_indexes_of(values)
    findings: list[str] = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in sorted(tables):
            columns = [col.name for col in connection.introspection.get_table_description(cursor, table)]
            encoded = ENCODED_COLUMNS.get(table, ())
            for column in columns:
                if column in encoded:
                    continue
                for value in values:
                    patterns = [_like(form) for form in _forms(value)]
                    where = " OR ".join(f"UPPER(CAST({quote(column)} AS TEXT)) LIKE %s ESCAPE '\\'" for _ in patterns)
                    cursor.execute(
                        f"SELECT CAST({quote(column)} AS TEXT) FROM {quote(table)} WHERE {where}",  # noqa: S608
                        patterns,
                    )
                    hits = [row[0] for row in cursor.fetchall()]
                    if hits:
                        findings.append(f"{table}.{column}: {value!r} ({len(hits)} rows), e.g. {hits[0][:160]!r}")
            findings += _encrypted_findings(cursor, table, [c for c in columns if c not in encoded], plain_values)
            if encoded:
                decoded = _decoded_rows(table)
                for column in encoded:
                    texts = [text for name, text in decoded if name == column]
                    for value in values:
                        hits = [t for t in texts if any(form.lower() in t.lower() for form in _forms(value))]
                        if hits:
                            findings.append(
                                f"{table}.{column} (decoded): {value!r} ({len(hits)} rows), e.g. {hits[0][:160]!r}"
                            )
    return findings
