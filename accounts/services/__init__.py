"""The write path of people and access, one module per part: employees, entitlements recorded by hand,
provisioning through connectors, access requests, their approval steps, delegations and periodic
notices. Views, admin, imports and tasks call these; accounts' own code imports the sub-modules.
"""

# TEMP-REEXPORT: removed when callers import from the sub-modules
from accounts.services.access_requests import (  # noqa: F401
    access_request_cancel,
    access_request_create,
    access_requests_close_for_leaver,
    expires_at_for,
    latest_end_date,
)
from accounts.services.approval_steps import (  # noqa: F401
    approval_step_decide,
    approval_step_reassign,
    approval_steps_follow_manager,
    approvals_hand_over,
)
from accounts.services.delegations import delegation_cancel, delegation_create  # noqa: F401
from accounts.services.employees import (  # noqa: F401
    ANONYMISED_EMAIL_DOMAIN,
    EMPLOYEE_ORG_FIELDS,
    PERSONAL_FIELDS,
    employee_anonymise,
    employee_anonymised_values,
    employee_create,
    employee_delete,
    employee_deletion_blockers,
    employee_disable_login,
    employee_set_status,
    employee_update,
)
from accounts.services.entitlements import _live_entitlement, entitlement_grant, entitlement_revoke  # noqa: F401
from accounts.services.notices import approval_steps_remind, entitlements_notify_expiry  # noqa: F401
from accounts.services.provisioning import (  # noqa: F401
    entitlement_change_level,
    entitlement_confirm_level_changed,
    entitlement_confirm_provisioned,
    entitlement_confirm_revoked,
    entitlement_deprovision,
    entitlement_plan,
    entitlement_provision,
)
