"""Outbound connectors: how Portal acts in the systems people get accounts in.

One small interface (`base.Connector`): provision, change level, revoke, disable, read state.
Each `Application` names its connector type and holds its config; `connector_for(app)`
returns the connector. Every call takes an idempotency key (the lifecycle task's id), reads
the target's state before acting, and is safe to repeat.
"""

from accounts.connectors import manual  # noqa: E402,F401  (registers itself)
from accounts.connectors.base import (  # noqa: F401
    AccountState,
    Connector,
    ConnectorError,
    ManualActionRequired,
    connector_for,
    connector_registry,
    register_connector,
)
