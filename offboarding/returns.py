"""Temporary alias for callers not yet moved; hardware returns live in `offboarding.flows.returns`."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from offboarding.flows.returns import hardware_return_request, return_link_token  # noqa: F401
