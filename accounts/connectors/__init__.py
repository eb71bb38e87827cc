"""Outbound connectors: how Portal acts in the systems people get accounts in.

One small interface (`base.Connector`): provision, change level, revoke, disable, read state.
Each `Application` names its connector type and holds its config; `connector_for(app)`
returns the connector. Every call takes an idempotency key (the lifecycle task's id), reads
the target's state before acting, and is safe to repeat.

Kinds: `manual` (a task for IT), `ldap` (`accounts.connectors.ldap`), `webhook`
(`accounts.connectors.webhook`, whose docstring is the protocol a receiver implements), `scim`
(`accounts.connectors.scim`, a SCIM 2.0 client for applications that serve RFC 7644).
Secrets in a config (`Connector.secret_fields`) may be given as `<key>_env`, the name of an
environment variable, to keep them out of the database and its history.
"""

from accounts.connectors import ldap, manual, scim, webhook  # noqa: E402,F401  (each registers itself)
from accounts.connectors.base import (  # noqa: F401
    SECRET_MASK,
    AccountState,
    Connector,
    ConnectorError,
    ManualActionRequired,
    connector_for,
    connector_registry,
    mask_secrets,
    register_connector,
    restore_secrets,
)
