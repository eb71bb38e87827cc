"""The retention purge forgets a leaver everywhere: a leaver with every kind of activity, then a scan of
every column of every table (`portal.testing.personal_data`) for every value that identifies them."""

import datetime
import traceback

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import (
    AccessRequest,
    ApprovalPolicy,
    ApprovalStep,
    ConnectorType,
    Employee,
    EmployeeStatus,
    RoleApplication,
)
from accounts.services.access_requests import access_request_create
from accounts.services.approval_steps import approval_step_decide
from accounts.services.delegations import delegation_create
from accounts.services.provisioning import account_forget
from accounts.tests.factories import (
    ApplicationFactory,
    DepartmentFactory,
    EmployeeFactory,
    EntitlementFactory,
    RoleFactory,
    UserFactory,
)
from assets.models import RoleKitItem
from assets.tests.factories import AssetModelFactory, HardwareAssetFactory
from offboarding import engine
from offboarding.flows.change_requests import change_request_confirm, change_request_create
from offboarding.flows.joiner import joiner_start
from offboarding.flows.retention import retention_purge, retention_purge_due
from offboarding.flows.returns import hardware_return_receive, hardware_return_ship
from offboarding.models import ChangeRequestKind, ChecklistKind, HardwareReturn, ReturnMethod, Task, TaskStatus
from offboarding.tests.factories import lifecycle_templates
from portal.auditchain import audit_verify
from portal.models import AuditEvent
from portal.testing.assertions import refused_and_nothing_written
from portal.testing.personal_data import personal_data_scan

pytestmark = pytest.mark.django_db

FIRST, PREFERRED, LAST = "Zephyrine", "Zeph", "Quillfeather"
WORK_EMAIL = "zephyrine.quillfeather@example.com"
PERSONAL_EMAIL = "zq.home@private-mail.example"
USERNAME = "zquillfeather"
PHONE = "+44 20 7946 0321"
ADDRESS = "17 Larkspur Mews, Whitby"
# Free text she wrote; each carries a marker so the scan can tell whether the text itself survived.
JUSTIFICATION = "Marker-JUST-7781: I run the quarterly close for the Whitby office."
APPROVAL_COMMENT = "Marker-APPR-7782: fine by me, Rory needs it for the audit."
REJECTION_COMMENT = "Marker-REJ-7783: not needed for the new team."
DELEGATION_REASON = "Marker-DELEG-7784: hospital stay"
MOVE_REASON = "Marker-MOVE-7785: Rory joins the data team."
TASK_NOTE = "Marker-NOTE-7786: read it twice."

IDENTIFYING = [
    f"{FIRST} {LAST}",  # the legal name
    f"{PREFERRED} {LAST}",  # the name Portal shows (full_name)
    WORK_EMAIL,
    PERSONAL_EMAIL,
    WORK_EMAIL.split("@")[0],  # the work email's local part: the LDAP uid, in the entry's DN
    USERNAME,
    PHONE,
    ADDRESS,
    LAST,  # distinctive here: any copy of the surname alone is a copy of her
    *(text.split(":")[0] for text in (JUSTIFICATION, APPROVAL_COMMENT, REJECTION_COMMENT, DELEGATION_REASON)),
    *(text.split(":")[0] for text in (MOVE_REASON, TASK_NOTE)),
]


def fail_naming(employee_id: int) -> None:
    """A queued function that fails with the person's name in its message, as any service error may."""
    employee = Employee.objects.get(pk=employee_id)
    raise RuntimeError(f"Could not reach {employee.full_name} <{employee.work_email}>")


def django_q_failure(func, *args) -> None:
    """Run `func(*args)` as django-q2's worker does and store its failure through django-q2's monitor."""
    from django_q.brokers import get_broker
    from django_q.humanhash import uuid
    from django_q.monitor import save_task

    task_id, name = uuid()
    started = timezone.now()
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - recorded as the worker records it
        result = f"{exc} : {traceback.format_exc()}"
    else:
        raise AssertionError(f"{func.__name__} was meant to fail")
    task = {
        "id": task_id,
        "name": name,
        "func": f"{func.__module__}.{func.__name__}",
        "args": args,
        "kwargs": {},
        "started": started,
        "stopped": timezone.now(),
        "result": result,
        "success": False,
    }
    save_task(task, get_broker())


def build_leaver(settle, client, ldap, hook):
    """Zephyrine's whole working life in Portal, through the services, then her leave; returns her and IT."""
    it = UserFactory(username="it-staff", is_staff=True, is_superuser=True)
    lifecycle_templates()
    directory = ApplicationFactory(
        name="Directory",
        connector=ConnectorType.LDAP,
        connector_config=ldap.connector_config(),
        approval_policy=ApprovalPolicy.NONE,
    )
    ops = ApplicationFactory(
        name="Ops Console",
        connector=ConnectorType.WEBHOOK,
        connector_config=hook.connector_config(),
        approval_policy=ApprovalPolicy.MANAGER_THEN_OWNER,
        owner=EmployeeFactory(first_name="Owen", last_name="Owner", user=UserFactory(username="owen")),
    )
    role = RoleFactory(name="Analyst", code="analyst")
    RoleApplication.objects.create(role=role, application=directory, access_level="user")
    RoleItem = AssetModelFactory(manufacturer="Lenovo", name="T14")
    RoleKitItem.objects.create(role=role, asset_model=RoleItem, quantity=1)
    HardwareAssetFactory(asset_tag="LT-4242", model=RoleItem)
    finance = DepartmentFactory(name="Finance")
    head = EmployeeFactory(
        first_name="Hana", last_name="Head", user=UserFactory(username="hana"), status=EmployeeStatus.ACTIVE
    )
    other_manager = EmployeeFactory(
        first_name="Omar", last_name="Other", user=UserFactory(username="omar"), status=EmployeeStatus.ACTIVE
    )
    colleague = EmployeeFactory(
        first_name="Cleo", last_name="Colleague", user=UserFactory(username="cleo"), status=EmployeeStatus.ACTIVE
    )
    owner = ops.owner

    # She joins: birthright LDAP access, a laptop reserved, welcome emails to both addresses.
    zeph = EmployeeFactory(
        employee_number="E-7700",
        first_name=FIRST,
        preferred_name=PREFERRED,
        last_name=LAST,
        work_email=WORK_EMAIL,
        personal_email=PERSONAL_EMAIL,
        personal_phone=PHONE,
        home_address=ADDRESS,
        role=role,
        department=finance,
        manager=head,
        status=EmployeeStatus.PRE_HIRE,
        start_date=timezone.localdate(),
        user=UserFactory(username=USERNAME, first_name=FIRST, last_name=LAST, email=WORK_EMAIL),
    )
    join = settle(func=joiner_start, employee=zeph, acting_user=it)
    for _ in range(3):
        settle(func=engine.sweep, now=timezone.now() + datetime.timedelta(days=5))
    for task in join.tasks.filter(status=TaskStatus.PENDING, assignee_type__in=["employee", "manager", "it"]):
        if task.is_finished:
            continue
        settle(func=engine.task_complete, task=task, acting_user=zeph.user, note=TASK_NOTE)
    assert mail.outbox, "the joiner emails were sent"
    zeph.refresh_from_db()
    laptop = zeph.assets.get() if hasattr(zeph, "assets") else None
    assert ldap.people(), "her LDAP entry exists"

    # Her reports; she asks for access, approves and rejects theirs, delegates while away.
    rory = EmployeeFactory(
        first_name="Rory",
        last_name="Report",
        manager=zeph,
        user=UserFactory(username="rory"),
        status=EmployeeStatus.ACTIVE,
    )
    rhea = EmployeeFactory(
        first_name="Rhea",
        last_name="Report",
        manager=zeph,
        user=UserFactory(username="rhea"),
        status=EmployeeStatus.ACTIVE,
    )
    client.force_login(zeph.user)  # a live session, and self-service use
    mine = settle(
        func=access_request_create,
        employee=zeph,
        application=ops,
        level="user",
        justification=JUSTIFICATION,
        acting_user=zeph.user,
    )
    settle(func=approval_step_decide, step=mine.steps.get(order=1), acting_user=head.user, approve=True, comment="ok")
    settle(
        func=approval_step_decide,
        step=ApprovalStep.objects.get(request=mine, order=2),
        acting_user=owner.user,
        approve=True,
    )
    assert hook.accounts["E-7700"]["active"], "her webhook account was provisioned"
    for report, approve, comment in ((rory, True, APPROVAL_COMMENT), (rhea, False, REJECTION_COMMENT)):
        request = settle(
            func=access_request_create,
            employee=report,
            application=ops,
            level="user",
            justification=f"{report.first_name} needs Ops.",
            acting_user=report.user,
        )
        settle(
            func=approval_step_decide,
            step=request.steps.get(order=1),
            acting_user=zeph.user,
            approve=approve,
            comment=comment,
        )
    settle(
        func=delegation_create,
        delegator=zeph,
        delegate=colleague,
        starts_on=timezone.localdate() + datetime.timedelta(days=1),
        ends_on=timezone.localdate() + datetime.timedelta(days=5),
        acting_user=zeph.user,
        reason=DELEGATION_REASON,
    )
    # She asks IT to move Rory to another manager; IT confirms: Rory's move run names her as former manager.
    move = settle(
        func=change_request_create,
        manager=zeph,
        employee=rory,
        kind=ChangeRequestKind.MOVE,
        effective_date=timezone.localdate(),
        reason=MOVE_REASON,
        acting_user=zeph.user,
        new_manager=other_manager,
    )
    settle(func=change_request_confirm, request=move, acting_user=it)
    assert rory.checklist_runs.filter(kind=ChecklistKind.MOVE).exists()
    # IT edits her in the admin (a LogEntry naming her).
    LogEntry.objects.log_actions(it.pk, [zeph], CHANGE, change_message=f"Changed title of {zeph}.", single_object=True)
    # A queued task failed with her name in its message: django-q2 keeps failures (pickled).
    django_q_failure(fail_naming, zeph.pk)

    # Her manager asks IT to off-board her; IT confirms; the cut-off runs now.
    leave = settle(
        func=change_request_create,
        manager=head,
        employee=zeph,
        kind=ChangeRequestKind.LEAVE,
        effective_date=timezone.localdate(),
        reason="Leaving for a sabbatical.",
        acting_user=head.user,
    )
    settle(func=change_request_confirm, request=leave, acting_user=it)
    for _ in range(5):
        settle(func=engine.sweep, now=timezone.now() + datetime.timedelta(days=1))
    for item in HardwareReturn.objects.filter(employee=zeph):
        settle(
            func=hardware_return_ship,
            item=item,
            method=ReturnMethod.COURIER,
            acting_user=None,
            via_link=True,
            carrier="DHL",
            tracking_number="JD0142",
        )
        settle(func=hardware_return_receive, item=item, acting_user=it, note=f"Back from {zeph.full_name}")
    zeph.refresh_from_db()
    assert zeph.status == EmployeeStatus.TERMINATED
    assert AccessRequest.objects.filter(employee=zeph).exists()
    del laptop
    return zeph, it


def test_after_the_purge_no_column_of_any_table_holds_anything_that_identifies_the_leaver(
    settle, client, ldap_directory, webhook_server, settings
):
    zeph, _it = build_leaver(settle, client, ldap_directory, webhook_server)
    before = personal_data_scan(IDENTIFYING)
    assert len(before) > 20, before  # the scan sees her everywhere before the purge
    # Her personal contact data is encrypted at rest: the scan reads it only decrypted (row and history),
    # never as plaintext in the column, and finds its blind indexes.
    for table in ("accounts_employee", "accounts_historicalemployee"):
        for column in ("personal_email", "personal_phone", "home_address"):
            assert any(f.startswith(f"{table}.{column} (decrypted): ") for f in before), (table, column, before)
            assert not any(f.startswith(f"{table}.{column}: ") for f in before), (table, column, before)
    assert any(f.startswith("accounts_employee.personal_email_index: ") for f in before), before
    assert any(f.startswith("accounts_employee.personal_phone_index: ") for f in before), before

    purge_day = zeph.end_date + datetime.timedelta(days=settings.LIFECYCLE["RETENTION_DAYS"] + 1)
    counts = settle(
        func=retention_purge_due, now=timezone.make_aware(datetime.datetime.combine(purge_day, datetime.time(3)))
    )
    assert counts["purged"] == 1, counts

    left = personal_data_scan(IDENTIFYING)
    assert not left, "Still identifying the leaver after the purge:\n" + "\n".join(left)
    # The audit log was redacted, not rewritten: its hash chain still verifies, the redactions counted.
    report = audit_verify()
    assert report.ok, [p.message for p in report.problems]
    assert report.redacted > 0

    # The connectors that can forget were told, once each, by queued tasks: the LDAP entry is gone
    # (default on_forget) and the webhook peer got one signed forget event naming only the number.
    assert ldap_directory.people() == []
    [forget] = webhook_server.calls_for("forget")
    assert forget.signature_ok and forget.applied
    assert forget.json["employee"] == {"employee_number": "E-7700"}
    assert "E-7700" not in webhook_server.accounts
    forgotten = AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_FORGOTTEN, target_id=str(zeph.pk))
    assert sorted(e.detail["connector"] for e in forgotten) == ["ldap", "webhook"]
    tasks = Task.objects.filter(run__employee=zeph, action="forget_account")
    assert sorted(t.status for t in tasks) == [TaskStatus.DONE, TaskStatus.DONE]


@pytest.fixture
def purgeable(webhook_server):
    """Pia, terminated long ago, who held a webhook account; and the webhook application."""
    ops = ApplicationFactory(
        name="Ops", connector=ConnectorType.WEBHOOK, connector_config=webhook_server.connector_config()
    )
    pia = EmployeeFactory(
        employee_number="P-0042",
        first_name="Pialotta",
        last_name="Vandersnoot",
        status=EmployeeStatus.TERMINATED,
        end_date=timezone.localdate() - datetime.timedelta(days=400),
        start_date=datetime.date(2020, 1, 1),
        work_email="pialotta.vandersnoot@example.com",
        user=UserFactory(username="pvandersnoot"),
    )
    EntitlementFactory(employee=pia, application=ops, status="revoked", revoked_at=timezone.now(), external_id="x-42")
    return pia, ops


def test_a_second_purge_queues_no_second_forget_and_a_peer_that_is_down_is_retried(settle, purgeable, webhook_server):
    pia, _ops = purgeable
    webhook_server.fail_always(503, '{"error": "down for maintenance"}')
    first = settle(func=retention_purge, employee=pia, acting_user=None)
    [task] = Task.objects.filter(pk__in=first["forget_tasks"])
    task.refresh_from_db()
    assert task.status != TaskStatus.DONE and "down for maintenance" in task.last_error  # retried later
    assert Employee.objects.get(pk=pia.pk).anonymised_at is not None  # the purge itself stands

    assert settle(func=retention_purge, employee=pia, acting_user=None) == {"already": True}
    webhook_server.behave()
    settle(func=engine.sweep, now=timezone.now() + datetime.timedelta(hours=2))  # past the backoff
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert [call.applied for call in webhook_server.calls_for("forget") if call.status == 200] == [True]
    assert Task.objects.filter(action="forget_account").count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_FORGOTTEN).count() == 1


def test_forget_is_refused_for_someone_not_purged_and_for_a_connector_that_cannot(purgeable):
    pia, ops = purgeable
    with refused_and_nothing_written(ValidationError, match="has not been purged"):
        account_forget(employee=pia, application=ops, idempotency_key="t-1")
    manual = ApplicationFactory(name="Paper", connector=ConnectorType.MANUAL)
    Employee.objects.filter(pk=pia.pk).update(anonymised_at=timezone.now())
    with refused_and_nothing_written(ValidationError, match="manual connector, which cannot forget"):
        account_forget(employee=pia, application=manual, idempotency_key="t-1")


def test_a_namesake_keeps_their_name_and_short_texts_are_removed_only_where_she_wrote_them(settle, purgeable):
    pia, ops = purgeable
    namesake = EmployeeFactory(first_name="Pialotta", last_name="Vandersnoot", status=EmployeeStatus.ACTIVE)
    theirs = AccessRequest.objects.create(employee=namesake, application=ops, justification="ok")
    mine = AccessRequest.objects.create(employee=pia, application=ops, justification="ok", status="rejected")
    outcome = settle(func=retention_purge, employee=pia, acting_user=None)
    assert outcome["namesake"] is True
    namesake.refresh_from_db()
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert namesake.full_name == "Pialotta Vandersnoot" and str(theirs) == f"#{theirs.pk} Pialotta Vandersnoot → Ops"
    assert theirs.justification == "ok"  # someone else's identical words stay
    assert mine.justification == "(removed by the retention purge)"
    assert not personal_data_scan(["pialotta.vandersnoot@example.com", "pvandersnoot", "Vandersnoot (P-0042)"])


def test_purge_of_someone_not_terminated_is_refused_and_writes_nothing(purgeable):
    pia, _ops = purgeable
    Employee.objects.filter(pk=pia.pk).update(status=EmployeeStatus.ACTIVE)
    with refused_and_nothing_written(ValidationError, match="is not terminated"):
        retention_purge(employee=Employee.objects.get(pk=pia.pk), acting_user=None)


def test_emails_addressed_to_her_are_emptied_and_one_not_yet_sent_is_never_sent(purgeable):
    """Her greeting names her by first name alone, which the whole-value rewrite leaves to spare
    namesakes: the purge empties every outbox row addressed to her instead. Rows to others stay."""
    from portal.models import OutboundEmail

    pia, _ops = purgeable
    sent = OutboundEmail.objects.create(
        template="welcome",
        from_email="it@example.com",
        recipients=f"{pia.work_email}\n",
        subject="Welcome, Pialotta",
        body="Hello Pialotta,\n\nYour laptop is ready.",
        status=OutboundEmail.Status.SENT,
        sent_at=timezone.now(),
    )
    waiting = OutboundEmail.objects.create(
        template="reminder",
        from_email="it@example.com",
        recipients=pia.work_email.upper(),
        subject="Return your laptop, Pialotta",
        body="Hello Pialotta, please return it.",
    )
    other = OutboundEmail.objects.create(
        template="welcome",
        from_email="it@example.com",
        recipients="pialotta.someone-else@example.com",
        subject="Welcome, Pialotta",
        body="Hello Pialotta,",
        status=OutboundEmail.Status.SENT,
    )
    outcome = retention_purge(employee=pia, acting_user=None)

    assert outcome["emails_removed"] == 2
    sent.refresh_from_db()
    waiting.refresh_from_db()
    other.refresh_from_db()
    for row in (sent, waiting):
        assert "Pialotta" not in f"{row.recipients} {row.subject} {row.body} {row.html}"
        assert row.template  # the record of what kind of email went, and when, stays
    assert sent.status == OutboundEmail.Status.SENT
    assert waiting.status == OutboundEmail.Status.FAILED
    assert "retention purge" in waiting.last_error
    assert other.body == "Hello Pialotta,"  # someone else's email is untouched
