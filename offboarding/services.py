"""Temporary alias of `offboarding.engine` for callers not yet moved; import `offboarding.engine`."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from offboarding.engine import *  # noqa: F403
from offboarding.engine import __all__  # noqa: F401
