"""Temporary: provisioning moved to `accounts.services.provisioning`; this module only re-exports it
for callers not yet moved."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from accounts.services.provisioning import (  # noqa: F401
    entitlement_change_level,
    entitlement_confirm_level_changed,
    entitlement_confirm_provisioned,
    entitlement_confirm_revoked,
    entitlement_deprovision,
    entitlement_plan,
    entitlement_provision,
)
