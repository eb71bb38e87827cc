"""The Ed25519 keys that sign audit checkpoints, read from the environment (no Django, no Portal app).

`PORTAL_AUDIT_SIGNING_KEY`: the private key, its 32 raw bytes in base64 (`manage.py audit_signing_key`
makes one). `PORTAL_AUDIT_VERIFY_KEYS`: public keys (32 bytes in base64, comma-separated) of retired
signing keys, so checkpoints they signed still verify after a rotation. Settings call the parsers at
start-up, so a malformed key stops Portal with a message that names the variable, never the value.
"""

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


class AuditKeyError(ValueError):
    """A key in the environment is not an Ed25519 key in the expected form."""


def key32_decode(value: str) -> bytes | None:
    """A 32-byte key written in base64 (44 characters), or None when `value` is not one."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _raw32(value: str, name: str, what: str) -> bytes:
    raw = key32_decode(value)
    if raw is None:
        raise AuditKeyError(
            f"{name} must be an Ed25519 {what}: its 32 bytes in base64 (44 characters). "
            f"The value set ({len(value.strip())} characters) is not. Make a new key with "
            "`python manage.py audit_signing_key`."
        )
    return raw


def signing_key_load(value: str, name: str = "PORTAL_AUDIT_SIGNING_KEY") -> Ed25519PrivateKey | None:
    """The private key in `value`, or None when it is empty (checkpoints are then refused)."""
    if not (value or "").strip():
        return None
    return Ed25519PrivateKey.from_private_bytes(_raw32(value, name, "private key"))


def verify_keys_load(value: str, name: str = "PORTAL_AUDIT_VERIFY_KEYS") -> list[Ed25519PublicKey]:
    """The public keys in the comma-separated `value` (may be empty)."""
    return [
        Ed25519PublicKey.from_public_bytes(_raw32(part, name, "public key"))
        for part in (value or "").split(",")
        if part.strip()
    ]


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """How a checkpoint names the key that signed it: 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def signing_key_new() -> tuple[str, str]:
    """A fresh key pair as (private key, public key), each 32 bytes in base64."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode(), base64.b64encode(public_raw(private.public_key())).decode()
