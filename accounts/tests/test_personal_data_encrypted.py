"""Personal email, phone and home address are encrypted at rest: the columns (base and history) hold
tokens, never the plaintext; a wrong or missing key fails loudly; the blind indexes find by equality."""

import base64
import importlib
import os
import subprocess
import sys

import pytest
from django.core.exceptions import FieldError
from django.db import connection

from accounts.models import Employee
from accounts.tests.factories import EmployeeFactory
from portal import crypto

EMAIL = "Petra.Private@Home.Example"
PHONE = "+49 (30) 1234-567"
ADDRESS = "Hauptstrasse 1, 10115 Berlin"
OTHER_KEY = "k2:" + base64.b64encode(b"k" * 32).decode()
THIRD_KEY = "k3:" + base64.b64encode(b"z" * 32).decode()


def _raw(table: str, where: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT personal_email, personal_phone, home_address FROM {table} WHERE {where}",  # noqa: S608
            params,
        )
        return cursor.fetchall()


@pytest.fixture
def petra(db):
    return EmployeeFactory(personal_email=EMAIL, personal_phone=PHONE, home_address=ADDRESS)


def test_the_columns_hold_tokens_never_the_plaintext_in_the_row_and_its_history(petra):
    petra.home_address = "Nebenstrasse 2, 10115 Berlin"
    petra.save()
    rows = _raw("accounts_employee", "id = %s", [petra.pk]) + _raw("accounts_historicalemployee", "id = %s", [petra.pk])
    assert len(rows) == 3
    stored = " ".join(value for row in rows for value in row)
    for plain in (EMAIL, PHONE, ADDRESS, "Nebenstrasse", "Berlin", "Petra", "1234"):
        assert plain.lower() not in stored.lower()
    for row in rows:
        for value in row:
            assert value.startswith("pf1:dev:"), value
    # Two encryptions of one value differ (random nonce): equal values cannot be spotted in the table.
    assert rows[0][0] != rows[1][0]
    fresh = Employee.objects.get(pk=petra.pk)
    assert (fresh.personal_email, fresh.personal_phone, fresh.home_address) == (
        EMAIL,
        PHONE,
        "Nebenstrasse 2, 10115 Berlin",
    )
    oldest = petra.history.order_by("history_id").first()
    assert (oldest.personal_email, oldest.home_address) == (EMAIL, ADDRESS)
    assert Employee.objects.filter(pk=petra.pk).values_list("personal_phone", flat=True).get() == PHONE


def test_saving_again_never_encrypts_twice(petra):
    for _ in range(3):
        petra = Employee.objects.get(pk=petra.pk)
        petra.save()
    assert Employee.objects.get(pk=petra.pk).personal_email == EMAIL
    # A plaintext that looks like a token is still plaintext: encrypted as it is, read back as it is.
    looks_like = _raw("accounts_employee", "id = %s", [petra.pk])[0][0]
    petra.home_address = looks_like
    petra.save()
    assert Employee.objects.get(pk=petra.pk).home_address == looks_like


def test_blank_stays_blank(db):
    person = EmployeeFactory()
    assert _raw("accounts_employee", "id = %s", [person.pk]) == [("", "", "")]
    assert Employee.objects.filter(personal_email="").filter(pk=person.pk).exists()
    assert (person.personal_email_index, person.personal_phone_index) == ("", "")


def test_a_wrong_key_raises_and_never_returns_ciphertext(petra, settings):
    settings.PORTAL_FIELD_KEYS = "dev:" + base64.b64encode(b"w" * 32).decode()
    with pytest.raises(crypto.FieldDecryptionError, match="does not decrypt with the key 'dev'"):
        Employee.objects.get(pk=petra.pk)
    settings.PORTAL_FIELD_KEYS = OTHER_KEY
    with pytest.raises(crypto.FieldDecryptionError, match="written with the key 'dev'.*does not list"):
        list(Employee.objects.filter(pk=petra.pk).values_list("home_address", flat=True))


def test_an_altered_or_moved_value_does_not_decrypt(petra):
    email_token = _raw("accounts_employee", "id = %s", [petra.pk])[0][0]
    with connection.cursor() as cursor:
        # The email's token copied into the address column: bound to its column, it does not decrypt there.
        cursor.execute("UPDATE accounts_employee SET home_address = %s WHERE id = %s", [email_token, petra.pk])
    with pytest.raises(crypto.FieldDecryptionError):
        Employee.objects.get(pk=petra.pk)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_employee SET home_address = %s WHERE id = %s", ["plain text", petra.pk])
    with pytest.raises(crypto.FieldDecryptionError, match="not an encrypted value"):
        Employee.objects.get(pk=petra.pk)


def test_an_encrypted_column_cannot_be_searched_in_sql(petra):
    with pytest.raises(FieldError, match="encrypted"):
        list(Employee.objects.filter(personal_email__icontains="petra"))
    with pytest.raises(FieldError, match="blind index"):
        list(Employee.objects.filter(personal_email=EMAIL))


def test_the_blind_index_finds_by_equality_normalised(petra):
    from accounts.selectors import employees_by_personal_email, employees_by_personal_phone

    assert list(employees_by_personal_email("  petra.private@home.example ")) == [petra]
    assert list(employees_by_personal_phone("0049 30 1234567".replace("00", "", 1))) == [petra]
    assert not employees_by_personal_email("petra.private@home.example.org").exists()
    assert not employees_by_personal_email("").exists()
    # The index is an HMAC, not a hash anyone can recompute: neither the value nor its plain SHA-256.
    assert petra.personal_email_index not in (EMAIL.lower(), crypto.normalise_email(EMAIL))
    import hashlib

    assert petra.personal_email_index != hashlib.sha256(EMAIL.lower().encode()).hexdigest()


def test_the_index_follows_a_save_of_some_fields(petra):
    petra.personal_email = "new@home.example"
    petra.save(update_fields=["personal_email"])
    from accounts.selectors import employees_by_personal_email

    assert list(employees_by_personal_email("NEW@home.example")) == [petra]
    assert not employees_by_personal_email(EMAIL).exists()


# --- Keys at start-up ------------------------------------------------------------------------------


def _start(env: dict) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with `env` (what start-up does)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_") and k not in ("DEBUG",)}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        env={**base, "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "portal.example", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_up_without_keys_fails_when_debug_is_off_naming_the_variable():
    result = _start({"DEBUG": "false", "PORTAL_BLIND_INDEX_KEY": base64.b64encode(b"b" * 32).decode()})
    assert result.returncode != 0
    assert "PORTAL_FIELD_KEYS must be set when DEBUG is off" in result.stderr
    result = _start({"DEBUG": "false", "PORTAL_FIELD_KEYS": OTHER_KEY})
    assert "PORTAL_BLIND_INDEX_KEY must be set when DEBUG is off" in result.stderr
    good = _start(
        {
            "DEBUG": "false",
            "PORTAL_FIELD_KEYS": OTHER_KEY,
            "PORTAL_BLIND_INDEX_KEY": base64.b64encode(b"b" * 32).decode(),
        }
    )
    assert good.returncode == 0, good.stderr


def test_start_up_refuses_a_malformed_key_or_the_dev_key_without_printing_it():
    secretish = "k1:" + base64.b64encode(b"s" * 31).decode()
    result = _start({"DEBUG": "true", "PORTAL_FIELD_KEYS": secretish})
    assert result.returncode != 0
    assert "PORTAL_FIELD_KEYS: the key 'k1' must be 32 bytes" in result.stderr
    assert secretish.split(":")[1] not in result.stderr
    result = _start({"DEBUG": "true", "PORTAL_FIELD_KEYS": "no-colon-here"})
    assert "PORTAL_FIELD_KEYS: entry 1 must be id:base64key" in result.stderr
    result = _start({"DEBUG": "true", "PORTAL_FIELD_KEYS": f"{OTHER_KEY},{OTHER_KEY}"})
    assert "listed twice" in result.stderr
    result = _start({"DEBUG": "true", "PORTAL_BLIND_INDEX_KEY": "short"})
    assert "PORTAL_BLIND_INDEX_KEY: the key must be 32 bytes" in result.stderr
    result = _start(
        {
            "DEBUG": "false",
            "PORTAL_FIELD_KEYS": crypto.DEV_FIELD_KEYS,
            "PORTAL_BLIND_INDEX_KEY": base64.b64encode(b"b" * 32).decode(),
        }
    )
    assert "holds the development key" in result.stderr


def test_field_key_new_prints_a_key_the_settings_accept(capsys):
    from django.core.management import call_command

    call_command("field_key_new", "--id", "k2027")
    printed = capsys.readouterr().out.strip().splitlines()[0]
    keys = crypto.field_keys_load(printed)
    assert keys.current == "k2027" and len(keys.keys["k2027"]) == 32


def test_the_dev_keys_are_well_formed():
    assert crypto.field_keys_load(crypto.DEV_FIELD_KEYS).current == "dev"
    assert len(crypto.blind_index_key_load(crypto.DEV_BLIND_INDEX_KEY)) == 32


# --- The migration converts rows written before it ---------------------------------------------------


def test_the_migration_encrypts_plaintext_rows_and_leaves_tokens_alone(petra):
    migration = importlib.import_module("accounts.migrations.0017_personal_data_encrypted")
    other = EmployeeFactory(personal_email="other@home.example")
    token_before = _raw("accounts_employee", "id = %s", [other.pk])[0][0]
    with connection.cursor() as cursor:  # as the rows were before the migration: plaintext, no index
        for table in ("accounts_employee", "accounts_historicalemployee"):
            cursor.execute(
                f"UPDATE {table} SET personal_email = %s, personal_phone = %s, home_address = %s WHERE id = %s",  # noqa: S608
                [EMAIL, PHONE, ADDRESS, petra.pk],
            )
        cursor.execute("UPDATE accounts_employee SET personal_email_index = '' WHERE id = %s", [petra.pk])
    migration.encrypt_existing(None, connection.schema_editor())
    rows = _raw("accounts_employee", "id = %s", [petra.pk]) + _raw("accounts_historicalemployee", "id = %s", [petra.pk])
    assert all(value.startswith("pf1:dev:") for row in rows for value in row)
    assert _raw("accounts_employee", "id = %s", [other.pk])[0][0] == token_before  # not encrypted twice
    fresh = Employee.objects.get(pk=petra.pk)
    assert (fresh.personal_email, fresh.personal_phone, fresh.home_address) == (EMAIL, PHONE, ADDRESS)
    assert fresh.personal_email_index == petra.personal_email_index != ""
    assert petra.history.first().personal_phone == PHONE
    # And backwards: plaintext again.
    migration.decrypt_existing(None, connection.schema_editor())
    assert _raw("accounts_employee", "id = %s", [petra.pk]) == [(EMAIL, PHONE, ADDRESS)]


# --- Rotation -------------------------------------------------------------------------------------------


def _key_ids(table: str) -> set[str]:
    ids = set()
    for row in _raw(table, "1 = 1", []):
        ids |= {crypto.token_key_id(value) for value in row if value}
    return ids


class _Stop(Exception):
    pass


@pytest.mark.django_db(transaction=True)  # real commits: each batch must be committed on its own
def test_rotation_re_encrypts_base_and_history_rows_and_resumes_after_an_interruption(settings, capsys):
    from django.core.management import call_command

    from portal.field_keys import field_keys_check, field_keys_rotate

    people = [
        EmployeeFactory(
            personal_email=f"p{i}@home.example", personal_phone=f"+49 30 {i:04d}", home_address=f"Street {i}"
        )
        for i in range(7)
    ]
    EmployeeFactory()  # blank: nothing to re-encrypt
    assert _key_ids("accounts_employee") == _key_ids("accounts_historicalemployee") == {"dev"}
    # The new key first, the old one after it (still reads).
    settings.PORTAL_FIELD_KEYS = f"{OTHER_KEY},{crypto.DEV_FIELD_KEYS}"
    batches = []

    def interrupt(model, count):
        batches.append((model._meta.label, count))
        assert not connection.in_atomic_block  # the batch is committed, not held in a wider transaction
        if len(batches) == 1:
            raise _Stop  # killed after its first batch (that batch committed)

    with pytest.raises(_Stop):
        field_keys_rotate(batch_size=3, after_batch=interrupt)
    assert _key_ids("accounts_employee") | _key_ids("accounts_historicalemployee") == {"dev", "k2"}
    # Halfway, every row (base and history) still decrypts, with the right values.
    for i, person in enumerate(people):
        fresh = Employee.objects.get(pk=person.pk)
        assert (fresh.personal_email, fresh.home_address) == (f"p{i}@home.example", f"Street {i}")
        assert [h.personal_phone for h in fresh.history.all()] == [f"+49 30 {i:04d}"]
    assert field_keys_check() == []
    # A second run finishes what is left, and only that.
    call_command("field_keys_rotate", "--batch-size", "3")
    out = capsys.readouterr().out
    first = batches[0][0]  # 3 rows of the first table done; 4 of it and 7 of the other left
    other = ({"accounts.Employee", "accounts.HistoricalEmployee"} - {first}).pop()
    assert f"{first}: 4 rows not written with the key 'k2'." in out
    assert f"{other}: 7 rows not written with the key 'k2'." in out
    assert _key_ids("accounts_employee") == _key_ids("accounts_historicalemployee") == {"k2"}
    # The old key can go now; everything reads with the new one alone.
    settings.PORTAL_FIELD_KEYS = OTHER_KEY
    assert field_keys_check() == []
    assert [e.personal_email for e in Employee.objects.filter(pk__in=[p.pk for p in people]).order_by("pk")] == [
        f"p{i}@home.example" for i in range(7)
    ]
    assert Employee.history.filter(id=people[0].pk).get().home_address == "Street 0"
    # Rotation wrote no history and left the blind indexes alone (they do not depend on the field keys).
    assert Employee.history.count() == 8
    from accounts.selectors import employees_by_personal_email

    assert list(employees_by_personal_email("P3@home.example")) == [people[3]]
    # Nothing left: a third run does nothing.
    assert field_keys_rotate(batch_size=3) == {"accounts.Employee": 0, "accounts.HistoricalEmployee": 0}


def test_a_missing_old_key_is_named_by_the_start_up_check_and_stops_rotation(petra, settings):
    from django.core.management import CommandError, call_command

    from portal.field_keys import field_keys_check

    settings.PORTAL_FIELD_KEYS = f"{THIRD_KEY},{OTHER_KEY}"  # the dev key that wrote them is gone
    errors = field_keys_check()
    assert {e.id for e in errors} == {"portal.E101"}
    messages = {e.msg for e in errors}
    assert len(messages) == 6  # 3 columns, in the row table and its history
    assert (
        "accounts.Employee.personal_email holds values written with the key 'dev', which PORTAL_FIELD_KEYS cannot read."
        in messages
    )
    with pytest.raises(CommandError, match="written with the key 'dev'"):
        call_command("field_keys_rotate")
    # A key listed under the right id but with other material: the sample does not decrypt.
    settings.PORTAL_FIELD_KEYS = "dev:" + base64.b64encode(b"w" * 32).decode()
    assert "portal.E102" in {e.id for e in field_keys_check()}
    settings.PORTAL_FIELD_KEYS = crypto.DEV_FIELD_KEYS
    assert field_keys_check() == []


def test_reindex_recomputes_the_blind_indexes_under_a_new_key(petra, settings):
    from django.core.management import call_command

    from accounts.selectors import employees_by_personal_email

    settings.PORTAL_BLIND_INDEX_KEY = base64.b64encode(b"n" * 32).decode()
    assert not employees_by_personal_email(EMAIL).exists()
    call_command("field_keys_rotate", "--reindex", "--batch-size", "1")
    assert list(employees_by_personal_email(EMAIL)) == [petra]
