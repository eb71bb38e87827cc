"""Small helpers the accounts tests share (and the higher apps' tests of accounts code): asking for
access as a person would, reading who may decide a step, and checking a refusal."""

from accounts.models import ApprovalStepUserObjectPermission
from accounts.services.access_requests import access_request_create


def ask(cast, app=None, *, who=None, level=None, justification="For the Q3 project.", end_date=None):
    """`who` (the `cast` employee by default) asks for `app` (GitHub: manager, then owner) themselves."""
    who = who or cast.employee
    app = app or cast.app
    return access_request_create(
        employee=who,
        application=app,
        level=level or app.access_levels[0],
        justification=justification,
        end_date=end_date,
        acting_user=who.user,
    )


def perms_on(step) -> set[str]:
    """Usernames holding the decide permission on `step`."""
    return set(
        ApprovalStepUserObjectPermission.objects.filter(content_object=step).values_list("user__username", flat=True)
    )
