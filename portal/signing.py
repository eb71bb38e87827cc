"""The HMAC signature Portal puts on every outgoing webhook (connector calls and event hooks alike).

`X-Portal-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`, with the timestamp in
`X-Portal-Timestamp` (unix seconds). A receiver verifies with a constant-time compare and refuses a
timestamp more than 5 minutes from its clock: the timestamp is signed, so an old request cannot be
replayed with a fresh one.
"""

import hashlib
import hmac


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Portal-Signature value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
