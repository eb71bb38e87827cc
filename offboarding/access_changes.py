"""Temporary alias for callers not yet moved; access changes live in `offboarding.flows.access_changes`."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from offboarding.flows.access_changes import access_expire_due, access_request_fulfil  # noqa: F401
