"""Encryption at rest of sensitive columns, and the keyed blind index that lets them be found by equality.

Keys come from the environment, never from `SECRET_KEY`:

- `PORTAL_FIELD_KEYS`: a comma-separated list of `id:base64key` (AES-256: 32 bytes in base64). The first
  is the current key (every new value is written with it); the others are old keys that still decrypt
  what they wrote, until `manage.py field_keys_rotate` has re-encrypted it. `manage.py field_key_new`
  prints a new one.
- `PORTAL_BLIND_INDEX_KEY`: 32 bytes in base64, the HMAC-SHA256 key of the blind indexes.

A stored value is `pf1:<key id>:<base64url(nonce || ciphertext || tag)>`: AES-256-GCM with a random
96-bit nonce, and the column's purpose (e.g. `accounts.employee.personal_email`) as associated data, so
a value copied into another column does not decrypt there. The key id says which key wrote it: rotation
selects the rows not written with the current key, and a key that is missing is named in the error.
The empty string is stored as it is (a blank field stays blank and says only that it is blank).

Settings parse both variables at start-up (`field_keys_load`, `blind_index_key_load`), so a malformed
key stops Portal with a message that names the variable, never the value. Imports no Portal app.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.audit_keys import key32_decode

PREFIX = "pf1"
TOKEN = re.compile(r"^pf1:([A-Za-z0-9]{1,16}):([A-Za-z0-9_-]+)$")
KEY_ID = re.compile(r"^[A-Za-z0-9]{1,16}$")
NONCE_BYTES = 12
TAG_BYTES = 16

# For DEBUG (development, the demo, tests) only: settings refuse both with DEBUG off.
DEV_FIELD_KEYS = "dev:" + base64.b64encode(b"portal-dev-only-field-key-0000!!").decode()
DEV_BLIND_INDEX_KEY = base64.b64encode(b"portal-dev-only-blind-index-00!!").decode()


class FieldKeyError(ValueError):
    """A key in the environment is missing or not in the expected form."""


class FieldDecryptionError(RuntimeError):
    """A stored value does not decrypt with any configured key: never returned as data."""


@dataclass(frozen=True)
class FieldKeys:
    """The parsed key list: `current` writes, every key in `keys` (by id) reads."""

    current: str
    keys: dict[str, bytes]

    def ids(self) -> list[str]:
        return list(self.keys)


def _key32(value: str, name: str, what: str) -> bytes:
    raw = key32_decode(value)
    if raw is None:
        raise FieldKeyError(
            f"{name}: {what} must be 32 bytes in base64 (44 characters); the value set "
            f"({len(value.strip())} characters) is not. Make a new key with `python manage.py field_key_new`."
        )
    return raw


def field_keys_load(value: str, name: str = "PORTAL_FIELD_KEYS") -> FieldKeys:
    """The keys in `value` (`id:base64key,id:base64key`, current first). Raises FieldKeyError naming `name`."""
    parts = [part.strip() for part in (value or "").split(",") if part.strip()]
    if not parts:
        raise FieldKeyError(f"{name} is empty: it must list at least one key as id:base64key.")
    keys: dict[str, bytes] = {}
    for position, part in enumerate(parts, start=1):
        key_id, sep, material = part.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID.match(key_id):
            raise FieldKeyError(
                f"{name}: entry {position} must be id:base64key, the id 1 to 16 letters or digits "
                "(e.g. k2026:...). Make one with `python manage.py field_key_new`."
            )
        if key_id in keys:
            raise FieldKeyError(f"{name}: the key id {key_id!r} is listed twice.")
        keys[key_id] = _key32(material, name, f"the key {key_id!r}")
    return FieldKeys(current=next(iter(keys)), keys=keys)


def blind_index_key_load(value: str, name: str = "PORTAL_BLIND_INDEX_KEY") -> bytes:
    if not (value or "").strip():
        raise FieldKeyError(f"{name} is empty.")
    return _key32(value, name, "the key")


def field_key_new(key_id: str | None = None) -> str:
    """A fresh `id:base64key` entry for PORTAL_FIELD_KEYS (the id defaults to k + 8 hex digits)."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    if not KEY_ID.match(key_id):
        raise FieldKeyError("A key id is 1 to 16 letters or digits.")
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def blind_index_key_new() -> str:
    """A fresh PORTAL_BLIND_INDEX_KEY (32 random bytes in base64)."""
    return base64.b64encode(os.urandom(32)).decode()


# Parsed once per distinct setting value (tests override the settings).
_parsed: dict[tuple[str, str], tuple[FieldKeys, bytes]] = {}


def _active() -> tuple[FieldKeys, bytes]:
    from django.conf import settings

    raw = (settings.PORTAL_FIELD_KEYS, settings.PORTAL_BLIND_INDEX_KEY)
    found = _parsed.get(raw)
    if found is None:
        found = _parsed[raw] = (field_keys_load(raw[0]), blind_index_key_load(raw[1]))
    return found


def field_keys() -> FieldKeys:
    return _active()[0]


def _aad(purpose: str) -> bytes:
    return f"portal-field-v1|{purpose}".encode()


def encrypt(plaintext: str, *, purpose: str, key_id: str | None = None) -> str:
    """The stored form of `plaintext` (not empty) under the current key (or `key_id`)."""
    keys = field_keys()
    key_id = key_id or keys.current
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keys.keys[key_id]).encrypt(nonce, plaintext.encode(), _aad(purpose))
    return f"{PREFIX}:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def token_key_id(stored: str) -> str | None:
    """The id of the key that wrote `stored`, or None when it is not a token."""
    match = TOKEN.match(stored or "")
    return match.group(1) if match else None


def decrypt(stored: str, *, purpose: str) -> str:
    """The plaintext of a stored token. Raises FieldDecryptionError for anything else (never returns it)."""
    match = TOKEN.match(stored)
    if match is None:
        raise FieldDecryptionError(
            f"{purpose}: a stored value is not an encrypted value (plaintext or damaged). "
            "Run `python manage.py migrate`, which encrypts existing values; it is not returned as data."
        )
    key_id, body = match.groups()
    keys = field_keys()
    key = keys.keys.get(key_id)
    if key is None:
        raise FieldDecryptionError(
            f"{purpose}: a stored value was written with the key {key_id!r}, which PORTAL_FIELD_KEYS does not "
            f"list (it has {', '.join(keys.ids())}). Add the old key back after the current one."
        )
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise ValueError("too short")
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(purpose)).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise FieldDecryptionError(
            f"{purpose}: a stored value does not decrypt with the key {key_id!r}: the key in PORTAL_FIELD_KEYS "
            "is not the one that wrote it, or the value was altered."
        ) from exc


def blind_index(value: str, *, purpose: str, normalise) -> str:
    """The keyed index of `value` for equality lookups: HMAC-SHA256 of its normalised form (hex), "" when empty."""
    normal = normalise(value or "")
    if not normal:
        return ""
    message = f"{purpose}|{normal}".encode()
    return hmac.new(_active()[1], message, hashlib.sha256).hexdigest()


def normalise_email(value: str) -> str:
    return (value or "").strip().lower()


def normalise_phone(value: str) -> str:
    return "".join(ch for ch in (value or "") if ch.isdigit())


def normalise_text(value: str) -> str:
    return " ".join((value or "").split()).lower()


NORMALISERS = {"email": normalise_email, "phone": normalise_phone, "text": normalise_text}
