"""Temporary: the self-service access services moved to `accounts.services` (access_requests,
approval_steps, delegations, notices); this module only re-exports them for callers not yet moved."""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from accounts.conf import access_setting  # noqa: F401
from accounts.models import CANCEL_REQUEST as CANCEL  # noqa: F401
from accounts.models import DECIDE_STEP as DECIDE  # noqa: F401
from accounts.services.access_requests import (  # noqa: F401
    access_request_cancel,
    access_request_create,
    access_requests_close_for_leaver,
    expires_at_for,
    latest_end_date,
)
from accounts.services.approval_steps import (  # noqa: F401
    _approver_chain,
    approval_step_decide,
    approval_step_reassign,
    approval_steps_follow_manager,
)
from accounts.services.delegations import delegation_cancel, delegation_create  # noqa: F401
from accounts.services.notices import approval_steps_remind, entitlements_notify_expiry  # noqa: F401
