"""The lifecycle of people pushed by identity providers (SCIM): what accounts' sync hooks call.

accounts cannot import the lifecycle, so it fires `accounts.hooks.employee_joined`, `employee_moved`
and `employee_left_now`; `OffboardingConfig.ready()` connects them to these functions, which run the
same flows IT uses in the admin, inside the SCIM request's transaction.
"""

from django.utils import timezone

from offboarding.flows import joiner, leaver, mover


def identity_join(*, employee, acting_user):
    """Start the join run of a person an identity provider created (`joiner.joiner_start`, idempotent)."""
    return joiner.joiner_start(employee=employee, acting_user=acting_user)


def identity_move(*, employee, changes: dict, acting_user):
    """Apply a change of role, department and/or manager as IT's move does (`mover.mover_apply`: the same preview)."""
    return mover.mover_apply(employee=employee, changes=changes, acting_user=acting_user)


def identity_leave_now(*, employee, acting_user, reason: str):
    """Terminate with an immediate cut-off, last day today (`leaver.employee_terminate`; an open run is returned)."""
    last_day = max(timezone.localdate(), employee.start_date)
    return leaver.employee_terminate(
        employee=employee, last_day=last_day, acting_user=acting_user, immediate=True, reason=reason
    )
