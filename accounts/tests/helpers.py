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


def payments_rule(*, control_owner, acting_user=None, name="Payments: submit vs approve", enforcement=None):
    """A separation-of-duties rule over two new applications: whoever submits payments must not approve them."""
    from accounts.models import SoDEnforcement, SoDRule
    from accounts.services import sod
    from accounts.tests.factories import ApplicationFactory

    submit = ApplicationFactory(name=f"Bank portal ({name})", access_levels=["submitter", "viewer"])
    approve = ApplicationFactory(name=f"ERP payments ({name})", access_levels=["approver", "viewer"])
    return sod.sod_rule_save(
        rule=SoDRule(
            name=name,
            reason="Whoever submits a payment must not approve it.",
            first_application=submit,
            first_level="submitter",
            second_application=approve,
            second_level="approver",
            enforcement=enforcement or SoDEnforcement.APPROVAL,
            control_owner=control_owner,
        ),
        acting_user=acting_user,
    )


def breaking_with_exception(rule, *, employee, approved_by, acting_user=None):
    """`employee` holds both sides of `rule`, allowed by a 30-day exception `approved_by` granted."""
    import datetime

    from django.utils import timezone

    from accounts.models import SoDException
    from accounts.services import sod
    from accounts.tests.factories import EntitlementFactory

    EntitlementFactory(employee=employee, application=rule.first_application, level=rule.first_level)
    EntitlementFactory(employee=employee, application=rule.second_application, level=rule.second_level)
    today = timezone.localdate()
    return sod.sod_exception_grant(
        exception=SoDException(
            rule=rule,
            employee=employee,
            starts_on=today,
            ends_on=today + datetime.timedelta(days=30),
            reason="Month-end cover.",
            approved_by=approved_by,
        ),
        acting_user=acting_user,
    )
