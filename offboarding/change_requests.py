"""Temporary alias for callers not yet moved; change requests live in `offboarding.flows.change_requests`."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from offboarding.flows.change_requests import change_request_confirm, change_request_decline  # noqa: F401
