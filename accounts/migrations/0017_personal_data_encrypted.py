"""Personal email, phone and home address encrypted at rest, in the employee table and its history; blind indexes.

The data step reads and writes the columns with SQL (the fields would decrypt on read): each value that is
not already a token that decrypts under the column's purpose is encrypted with the current key of
PORTAL_FIELD_KEYS, 1,000 rows a statement batch; the base rows' blind indexes are computed. Backwards it
decrypts them again. Self-contained: the purposes and normalisers are written out here.
"""

from django.db import migrations

import portal.fields
import portal.limits
from portal import crypto

COLUMNS = {
    "personal_email": "accounts.employee.personal_email",
    "personal_phone": "accounts.employee.personal_phone",
    "home_address": "accounts.employee.home_address",
}
INDEXES = {
    "personal_email_index": ("personal_email", crypto.normalise_email),
    "personal_phone_index": ("personal_phone", crypto.normalise_phone),
}
TABLES = {"accounts_employee": "id", "accounts_historicalemployee": "history_id"}
BATCH = 1000


def _is_ours(value: str, purpose: str) -> bool:
    if crypto.token_key_id(value) is None:
        return False
    try:
        crypto.decrypt(value, purpose=purpose)
    except crypto.FieldDecryptionError:
        return False
    return True


def _convert(schema_editor, forwards: bool) -> None:
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    for table, pk in TABLES.items():
        names = list(COLUMNS) + (list(INDEXES) if table == "accounts_employee" and forwards else [])
        last = None
        while True:
            with connection.cursor() as cursor:
                where = "" if last is None else f"WHERE {quote(pk)} > %s"
                cursor.execute(
                    f"SELECT {quote(pk)}, {', '.join(quote(c) for c in COLUMNS)} FROM {quote(table)} "  # noqa: S608
                    f"{where} ORDER BY {quote(pk)} LIMIT {BATCH}",
                    [] if last is None else [last],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                updates = []
                for row in rows:
                    values = dict(zip(COLUMNS, row[1:], strict=True))
                    plain = {}
                    out = {}
                    for column, purpose in COLUMNS.items():
                        value = values[column] or ""
                        if forwards:
                            plain[column] = (
                                crypto.decrypt(value, purpose=purpose) if _is_ours(value, purpose) else value
                            )
                            out[column] = (
                                value
                                if _is_ours(value, purpose) or not value
                                else crypto.encrypt(value, purpose=purpose)
                            )
                        else:
                            out[column] = crypto.decrypt(value, purpose=purpose) if value else ""
                    if forwards and table == "accounts_employee":
                        for index, (source, normalise) in INDEXES.items():
                            out[index] = crypto.blind_index(plain[source], purpose=COLUMNS[source], normalise=normalise)
                    updates.append([out[name] for name in names] + [row[0]])
                assignments = ", ".join(f"{quote(name)} = %s" for name in names)
                cursor.executemany(f"UPDATE {quote(table)} SET {assignments} WHERE {quote(pk)} = %s", updates)  # noqa: S608
                last = rows[-1][0]


def encrypt_existing(apps, schema_editor):
    _convert(schema_editor, forwards=True)


def decrypt_existing(apps, schema_editor):
    _convert(schema_editor, forwards=False)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0016_admin_scope"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="employee",
            options={
                "ordering": ["last_name", "first_name", "id"],
                "permissions": [
                    (
                        "view_personal_data",
                        "Can see and export personal contact data (personal email, phone, home address)",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="employee",
            name="personal_email_index",
            field=portal.fields.BlindIndexField(normaliser="email", source="personal_email"),
        ),
        migrations.AddField(
            model_name="employee",
            name="personal_phone_index",
            field=portal.fields.BlindIndexField(normaliser="phone", source="personal_phone"),
        ),
        migrations.AlterField(
            model_name="employee",
            name="home_address",
            field=portal.fields.EncryptedTextField(
                blank=True,
                max_length=500,
                purpose="accounts.employee.home_address",
                validators=[portal.limits.TextLengthValidator(500, "The home address")],
            ),
        ),
        migrations.AlterField(
            model_name="employee",
            name="personal_email",
            field=portal.fields.EncryptedEmailField(blank=True, max_length=254, purpose="accounts.employee.personal_email", validators=[portal.limits.TextLengthValidator(254, "The personal email")]),
        ),
        migrations.AlterField(
            model_name="employee",
            name="personal_phone",
            field=portal.fields.EncryptedCharField(blank=True, max_length=30, purpose="accounts.employee.personal_phone", validators=[portal.limits.TextLengthValidator(30, "The personal phone")]),
        ),
        migrations.AlterField(
            model_name="historicalemployee",
            name="home_address",
            field=portal.fields.EncryptedTextField(
                blank=True,
                max_length=500,
                purpose="accounts.employee.home_address",
                validators=[portal.limits.TextLengthValidator(500, "The home address")],
            ),
        ),
        migrations.AlterField(
            model_name="historicalemployee",
            name="personal_email",
            field=portal.fields.EncryptedEmailField(blank=True, max_length=254, purpose="accounts.employee.personal_email", validators=[portal.limits.TextLengthValidator(254, "The personal email")]),
        ),
        migrations.AlterField(
            model_name="historicalemployee",
            name="personal_phone",
            field=portal.fields.EncryptedCharField(blank=True, max_length=30, purpose="accounts.employee.personal_phone", validators=[portal.limits.TextLengthValidator(30, "The personal phone")]),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
