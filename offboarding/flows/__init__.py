"""The lifecycle flows, built on the engine: joiner, mover, leaver, hardware returns, retention purge,
lifecycle emails, access changes outside join/move/leave, and managers' change requests.

No facade: callers import from the sub-module that owns the flow (`offboarding.flows.leaver`, ...).
"""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from offboarding.conf import lifecycle_setting  # noqa: F401
from offboarding.flows.common import end_of_day  # noqa: F401
from offboarding.flows.joiner import joiner_start  # noqa: F401
from offboarding.flows.leaver import employee_terminate, open_leave_run  # noqa: F401
from offboarding.flows.mover import MOVER_FIELDS, mover_apply, mover_preview  # noqa: F401
from offboarding.flows.returns import hardware_return_receive  # noqa: F401
