"""The demo company (`seed_demo`) and the synthetic company for benchmarks (`seed_scale`)."""

import datetime
import re
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Q
from django.utils import timezone

import accounts.connectors  # noqa: F401 - registers the connectors
from accounts.access import decides_twice
from accounts.connectors.base import connector_registry
from accounts.models import (
    CANCEL_REQUEST,
    DECIDE_STEP,
    DECIDE_STEP_PERM,
    AccessRequest,
    AccessRequestUserObjectPermission,
    Application,
    ApprovalDelegation,
    ApprovalPolicy,
    ApprovalStep,
    ApprovalStepStatus,
    ApprovalStepUserObjectPermission,
    Department,
    Employee,
    EmployeeStatus,
    Entitlement,
    EntitlementStatus,
    Location,
    Role,
)
from accounts.services.approval_steps import approval_chain_for
from accounts.tests.factories import AccessRequestFactory, EmployeeFactory, EntitlementFactory
from assets.models import HELD_STATUSES, AssetCheckout, AssetStatus, HardwareAsset, License, RoleKitItem
from assets.services import asset_check_out
from assets.tests.factories import HardwareAssetFactory
from demo.company import DEMO_PASSWORD, LOGINS
from demo.seeding import count_rows
from offboarding.engine.runs import runnable_tasks
from offboarding.models import (
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    HardwareReturn,
    ReturnStatus,
    RunStatus,
    Task,
    TaskStatus,
)
from portal.auditchain import audit_verify
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def seed_demo() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def seed_scale(n, **kwargs) -> str:
    out = StringIO()
    call_command("seed_scale", employees=n, stdout=out, **kwargs)
    return out.getvalue()


def assert_checkouts_consistent():
    """A held asset has exactly one open check-out, to its holder; any other asset has none."""
    held = HardwareAsset.objects.filter(status__in=HELD_STATUSES).annotate(
        open=Count("checkouts", filter=Q(checkouts__checked_in_at__isnull=True))
    )
    assert not held.exclude(open=1).exists()
    open_checkouts = AssetCheckout.objects.filter(checked_in_at__isnull=True)
    assert not open_checkouts.exclude(asset__status__in=HELD_STATUSES).exists()
    assert not open_checkouts.exclude(employee=F("asset__assigned_to")).exists()


def assert_steps_follow_policy():
    """Manager steps wait on the requester's manager, owner steps on the application's owner, in policy order."""
    assert not ApprovalStep.objects.filter(kind="manager").exclude(approver=F("request__employee__manager")).exists()
    assert not ApprovalStep.objects.filter(kind="owner").exclude(approver=F("request__application__owner")).exists()
    expected = {
        ApprovalPolicy.MANAGER: ["manager"],
        ApprovalPolicy.OWNER: ["owner"],
        ApprovalPolicy.MANAGER_THEN_OWNER: ["manager", "owner"],
    }
    for request in (
        AccessRequest.objects.filter(status="pending").select_related("application").prefetch_related("steps")
    ):
        steps = list(request.steps.all())
        assert [s.kind for s in steps] == expected[request.application.approval_policy]
        statuses = [s.status for s in steps]
        assert statuses.count(ApprovalStepStatus.PENDING) == 1
        current = statuses.index(ApprovalStepStatus.PENDING)
        assert set(statuses[:current]) <= {ApprovalStepStatus.APPROVED}
        assert set(statuses[current + 1 :]) <= {ApprovalStepStatus.WAITING}


def assert_an_hr_partner_asking_for_payables_gets_the_control_step():
    from accounts.models import Application, ApprovalStepKind, SoDRule
    from accounts.services.access_requests import access_request_create

    netsuite = Application.objects.get(name="NetSuite")
    partner = (
        Employee.objects.filter(
            status=EmployeeStatus.ACTIVE,
            user__isnull=False,
            entitlements__application__name="Workday",
            entitlements__level="hr_partner",
            entitlements__status=EntitlementStatus.ACTIVE,
        )
        .exclude(entitlements__application=netsuite)
        .exclude(access_requests__application=netsuite)
        .first()
    )
    assert partner is not None
    request = access_request_create(
        employee=partner,
        application=netsuite,
        level="accountant",
        justification="Month-end help.",
        end_date=timezone.localdate() + datetime.timedelta(days=30),
        acting_user=partner.user,
    )
    steps = list(request.steps.order_by("order"))
    assert steps[-1].kind == ApprovalStepKind.CONTROL
    rule = SoDRule.objects.get(name="Payroll data vs payables")
    assert (steps[-1].approver, steps[-1].sod_rule) == (rule.control_owner, rule)
    assert rule.control_owner != netsuite.owner


def all_row_counts() -> dict[str, int]:
    """Rows of every model, history tables included."""
    return count_rows(apps.get_models())


class TestSeedDemo:
    def test_creates_a_believable_consistent_company(self):
        output = seed_demo()

        assert 250 <= Employee.objects.count() <= 350
        assert Department.objects.count() >= 10
        assert not Department.objects.filter(head__isnull=True).exists()
        assert Department.objects.filter(parent__isnull=True).count() == 1
        assert Location.objects.values("region").distinct().count() == 3
        assert Role.objects.count() >= 8
        assert RoleKitItem.objects.count() >= 8
        assert Employee.objects.filter(manager__isnull=True).count() == 1  # the CEO
        assert set(Employee.objects.values_list("status", flat=True)) == set(EmployeeStatus.values)
        assert not Employee.objects.filter(
            status=EmployeeStatus.PRE_HIRE, start_date__lte=timezone.localdate()
        ).exists()
        assert Employee.objects.filter(status=EmployeeStatus.TERMINATED, end_date__isnull=True).count() == 0
        # Applications: every approval policy, owners, licenses, some near renewal.
        assert set(apps.get_model("accounts", "Application").objects.values_list("approval_policy", flat=True)) == set(
            ApprovalPolicy.values
        )
        assert License.objects.count() >= 15
        # Hardware: every status, and the check-out log agrees with the holder.
        assert 350 <= HardwareAsset.objects.count() <= 450
        assert set(HardwareAsset.objects.values_list("status", flat=True)) == set(AssetStatus.values)
        assert_checkouts_consistent()
        # Access: birthrights, unused ones, and no live access for leavers.
        assert Entitlement.objects.filter(source="birthright").exists()
        assert Entitlement.objects.filter(status=EntitlementStatus.ACTIVE, last_used_at__isnull=False).exists()
        assert not Entitlement.objects.filter(
            employee__status=EmployeeStatus.TERMINATED, status=EntitlementStatus.ACTIVE
        ).exists()
        assert AccessRequest.objects.filter(status="pending").count() >= 10
        assert_steps_follow_policy()
        # Separation of duties: one rule, and one person allowed to break it (the report's one row).
        from accounts.services.sod import sod_violations

        assert [(c.rule.name, c.excepted) for c in sod_violations()] == [("Payroll data vs payables", True)]
        assert_an_hr_partner_asking_for_payables_gets_the_control_step()
        # History rows exist for the bulk-written rows.
        assert Employee.history.count() >= Employee.objects.count()
        assert HardwareAsset.history.count() >= HardwareAsset.objects.count()
        assert "portal-demo" in output

    def test_checklists_show_the_lifecycle_through_the_real_flows(self):
        output = seed_demo()
        now = timezone.now()
        assert {t.kind for t in ChecklistTemplate.objects.all()} == {"join", "move", "leave"}
        assert not Task.objects.filter(status__in=[TaskStatus.FAILED, TaskStatus.QUEUED, TaskStatus.RUNNING]).exists()
        assert not Task.objects.filter(action="purge_personal_data").exists()

        joins = list(ChecklistRun.objects.filter(kind=ChecklistKind.JOIN).select_related("employee"))
        assert len(joins) == 3
        for run in joins:
            assert run.status == RunStatus.RUNNING and run.effective_at > now
            assert run.employee.status == EmployeeStatus.PRE_HIRE
            assert run.tasks.get(key__endswith=":reserve-kit").status == TaskStatus.DONE
        assert HardwareAsset.objects.filter(reserved_for__in=[r.employee for r in joins]).exists()

        move = ChecklistRun.objects.select_related("employee__role").get(kind=ChecklistKind.MOVE)
        assert move.status == RunStatus.RUNNING and move.event_date < timezone.localdate()
        assert move.employee.role.code == "customer-success"
        revocations = move.tasks.filter(action="revoke_entitlement")
        assert revocations.exists() and not revocations.exclude(status=TaskStatus.PENDING).exists()
        assert not revocations.filter(due_at__lte=now).exists()  # the grace period
        assert move.tasks.filter(action="provision_entitlement", status=TaskStatus.DONE).exists()

        leaves = ChecklistRun.objects.filter(kind=ChecklistKind.LEAVE).select_related("employee")
        (past,) = [r for r in leaves if r.effective_at < now]
        assert past.status == RunStatus.RUNNING and past.effective_at < now - datetime.timedelta(days=2)
        assert past.employee.status == EmployeeStatus.TERMINATED
        assert not past.employee.entitlements.exclude(status=EntitlementStatus.REVOKED).exists()
        assert past.time_to_deprovision is not None
        assert past.tasks.get(key__endswith=":schedule-purge").status == TaskStatus.DONE
        assert past.details["purge_due"] > timezone.localdate().isoformat()
        returns = HardwareReturn.objects.filter(run=past)
        assert sorted(returns.values_list("status", flat=True)) == [ReturnStatus.OPEN, ReturnStatus.RECEIVED]
        assert returns.get(status=ReturnStatus.RECEIVED).asset.status == AssetStatus.IN_STOCK
        assert returns.get(status=ReturnStatus.OPEN).asset.status == AssetStatus.PENDING_RETURN
        future = [r for r in leaves if r.effective_at > now]
        assert future
        for run in future:
            assert run.status == RunStatus.RUNNING and run.employee.status == EmployeeStatus.ACTIVE
            assert not run.tasks.filter(assignee_type="system").exclude(status=TaskStatus.PENDING).exists()
        assert_checkouts_consistent()
        assert "Checklists: 3 joiners" in output and "demo_targets" in output

    def test_a_failure_while_loading_leaves_nothing_behind(self, monkeypatch):
        from demo import builder as command

        def broken(self, itadmin):
            raise RuntimeError("the checklists could not be made")

        before = all_row_counts()
        monkeypatch.setattr(command.DemoBuilder, "demo_future_leavers", broken)
        with pytest.raises(RuntimeError, match="checklists"):
            seed_demo()
        assert all_row_counts() == before

    def test_logins_have_their_groups_and_links(self, client):
        seed_demo()
        users = {u.username: u for u in get_user_model().objects.filter(username__in=LOGINS)}
        assert set(users) == set(LOGINS)
        assert [g.name for g in users["itadmin"].groups.all()] == ["IT admin"]
        assert [g.name for g in users["helpdesk"].groups.all()] == ["IT helpdesk"]
        assert [g.name for g in users["auditor"].groups.all()] == ["Auditor"]
        assert all(users[u].is_staff for u in ("itadmin", "helpdesk", "auditor"))
        assert not any(u.is_superuser for u in users.values())
        assert not any(users[u].is_staff for u in ("manager", "owner", "employee"))

        manager = Employee.objects.get(user=users["manager"])
        assert manager.reports.count() >= 5
        assert ApprovalStep.objects.filter(approver=manager, status=ApprovalStepStatus.PENDING).count() >= 3
        owner = Employee.objects.get(user=users["owner"])
        assert owner.owned_applications.exists()
        assert ApprovalStep.objects.filter(approver=owner, status=ApprovalStepStatus.PENDING, kind="owner").exists()
        employee = Employee.objects.get(user=users["employee"])
        assert employee.manager == manager
        assert employee.hardware.filter(status=AssetStatus.ASSIGNED).count() >= 2
        assert employee.entitlements.filter(status=EntitlementStatus.ACTIVE).count() >= 3
        assert Employee.objects.get(user=users["itadmin"]).department.code == "IT"

        for username in LOGINS:
            assert client.login(username=username, password=DEMO_PASSWORD), username
            client.logout()
        assert users["manager"].has_perm(
            DECIDE_STEP_PERM,
            ApprovalStep.objects.filter(approver=manager, status=ApprovalStepStatus.PENDING).first(),
        )

    def test_connector_configs_are_valid(self):
        """The demo's SCIM and webhook applications pass their connector's own validation."""
        seed_demo()
        kinds = set()
        for application in Application.objects.all():
            connector_registry[application.connector].validate_config(
                application.connector_config, access_levels=application.access_levels
            )
            kinds.add(application.connector)
        assert kinds == {"manual", "scim", "webhook"}

    def test_second_run_changes_nothing(self):
        seed_demo()
        before = all_row_counts()
        assert before["accounts.HistoricalEmployee"] > 0

        output = seed_demo()

        assert all_row_counts() == before
        assert "already loaded" in output
        assert "itadmin" in output

    def test_refuses_a_partly_deleted_demo(self):
        seed_demo()
        ceo = Employee.objects.get(employee_number="P10001")
        Employee.objects.filter(manager=ceo).update(manager=None)
        Department.objects.filter(head=ceo).update(head=None)
        Employee.objects.filter(pk=ceo.pk).update(employee_number="X1")
        before = all_row_counts()

        with pytest.raises(CommandError, match="marker"):
            seed_demo()
        assert all_row_counts() == before


def decide_permission_holders() -> dict[int, set[int]]:
    """Step id → ids of the users holding `accounts.decide_approvalstep` on it."""
    holders: dict[int, set[int]] = {}
    rows = ApprovalStepUserObjectPermission.objects.filter(permission__codename=DECIDE_STEP)
    for step_id, user_id in rows.values_list("content_object_id", "user_id"):
        holders.setdefault(step_id, set()).add(user_id)
    return holders


class TestSeedDemoGoesThroughTheProduct:
    """The demo holds only what the approval services make: its chains, its grants, its audit trail."""

    def test_only_the_approver_and_their_delegates_may_decide_a_pending_step(self):
        seed_demo()
        today = timezone.localdate()
        holders = decide_permission_holders()
        delegate_grants = 0
        steps = ApprovalStep.objects.select_related("approver__user", "request__employee")
        for step in steps:
            if step.status != ApprovalStepStatus.PENDING:
                assert step.pk not in holders, f"{step} is {step.status}, yet someone may decide it"
                continue
            # The product routes a step only to an approver who can sign in.
            assert step.approver.user_id is not None and step.approver.status != EmployeeStatus.TERMINATED
            expected = {step.approver.user_id}
            delegations = ApprovalDelegation.objects.filter(
                delegator=step.approver, cancelled_at__isnull=True, ends_on__gte=today
            ).select_related("delegate__user")
            for delegation in delegations:
                delegate = delegation.delegate
                if delegate.pk != step.request.employee_id and not decides_twice(delegate, delegate.user, step):
                    expected.add(delegate.user_id)
            delegate_grants += len(expected) - 1
            assert holders.get(step.pk, set()) == expected, step
        assert delegate_grants > 0  # the `manager` login's holiday cover holds grants too
        assert set(holders) <= set(steps.filter(status=ApprovalStepStatus.PENDING).values_list("pk", flat=True))

    def test_only_the_requester_may_withdraw_a_pending_request(self):
        seed_demo()
        rows = AccessRequestUserObjectPermission.objects.filter(permission__codename=CANCEL_REQUEST)
        granted = set(rows.values_list("content_object_id", "user_id"))
        expected = set(
            AccessRequest.objects.filter(status="pending", employee__user__isnull=False).values_list(
                "pk", "employee__user_id"
            )
        )
        assert expected and granted == expected

    def test_every_chain_is_the_one_the_service_builds_and_was_walked_by_it(self):
        seed_demo()
        now = timezone.now()
        requests = AccessRequest.objects.select_related("employee__manager", "application__owner").prefetch_related(
            "steps"
        )
        assert {r.status for r in requests} >= {"pending", "rejected", "cancelled"}
        audited = {
            (action, int(pk))
            for action, pk in AuditEvent.objects.filter(
                target_type__in=["accounts.AccessRequest", "accounts.ApprovalStep"]
            ).values_list("action", "target_id")
        }
        for request in requests:
            steps = sorted(request.steps.all(), key=lambda s: s.order)
            chain = approval_chain_for(employee=request.employee, application=request.application)
            assert [(s.kind, s.approver_id) for s in steps] == [(kind, a.pk) for kind, a in chain], request
            assert (AuditEvent.Action.REQUEST, request.pk) in audited, request
            statuses = [s.status for s in steps]
            if request.status == "rejected":
                rejected = statuses.index(ApprovalStepStatus.REJECTED)
                assert set(statuses[:rejected]) <= {ApprovalStepStatus.APPROVED}
                assert set(statuses[rejected + 1 :]) <= {ApprovalStepStatus.SKIPPED}
            elif request.status == "cancelled":
                assert set(statuses) <= {ApprovalStepStatus.SKIPPED}
            # Backdated, in the order things happened, never in the future.
            moments = [request.created_at]
            for step in steps:
                moments += [t for t in (step.activated_at, step.decided_at) if t is not None]
                if step.status in (ApprovalStepStatus.APPROVED, ApprovalStepStatus.REJECTED):
                    assert step.decided_by_id == step.approver.user_id
                    action = AuditEvent.Action.APPROVE if step.status == "approved" else AuditEvent.Action.REJECT
                    assert (action, step.pk) in audited, step
            if request.decided_at:
                moments.append(request.decided_at)
            assert moments == sorted(moments) and moments[-1] <= now, request
        assert not AccessRequest.objects.filter(status="approved").exists()  # nothing waits to be provisioned

    def test_second_run_leaves_every_grant_and_chain_as_it_was(self):
        seed_demo()

        def snapshot():
            return (
                list(
                    ApprovalStepUserObjectPermission.objects.order_by("pk").values_list(
                        "pk", "content_object_id", "user_id"
                    )
                ),
                list(
                    AccessRequestUserObjectPermission.objects.order_by("pk").values_list(
                        "pk", "content_object_id", "user_id"
                    )
                ),
                list(ApprovalStep.objects.order_by("pk").values_list("pk", "status", "approver_id", "decided_at")),
                list(ApprovalDelegation.objects.values_list("pk", "delegator_id", "delegate_id", "starts_on")),
            )

        before = snapshot()
        seed_demo()
        assert snapshot() == before

    def test_demo_code_writes_no_permission_nor_approval_by_hand(self):
        """Static guard: the demo's code has no second write path for what the approval services own
        (rows built or bulk-written by hand, guardian grants, status or approver updates)."""
        approvals = r"(AccessRequest|ApprovalStep|ApprovalDelegation)"
        forbidden = [
            r"assign_perm|remove_perm|guardian|UserObjectPermission",
            rf"\b{approvals}\(",  # an instance built by hand
            rf"(bulk_\w+|Inserter)\(\s*{approvals}\b",
            rf"{approvals}\.objects\.(create|get_or_create|update_or_create|bulk_create|bulk_update)\(",
            r"\.update\([^)]*\b(status|approver|decided_by|requested_by|delegate)\w*\s*=",
        ]
        root = Path(__file__).resolve().parents[1]
        sources = [p for p in root.rglob("*.py") if "tests" not in p.relative_to(root).parts]
        assert len(sources) > 5
        for path in sources:
            text = path.read_text()
            for pattern in forbidden:
                match = re.search(pattern, text)
                assert match is None, f"{path.relative_to(root)}: {match.group(0)}"


class TestSeedScale:
    def test_small_company_in_proportion(self):
        output = seed_scale(50)

        employees = Employee.objects.filter(employee_number__startswith="S")
        assert employees.count() == 50
        assert Employee.objects.filter(manager__isnull=True).count() == 1
        assert set(employees.values_list("status", flat=True)) == set(EmployeeStatus.values)
        assert Department.objects.count() >= 3
        assert not Department.objects.filter(head__isnull=True).exists()
        assets = HardwareAsset.objects.count()
        assert 55 <= assets <= 80  # ~1.3 per employee
        assert set(HardwareAsset.objects.values_list("status", flat=True)) == set(AssetStatus.values)
        assert_checkouts_consistent()
        assert 4.5 <= Entitlement.objects.count() / 50 <= 7.5  # ~6 per employee
        assert not Entitlement.objects.filter(
            employee__status=EmployeeStatus.TERMINATED, status=EntitlementStatus.ACTIVE
        ).exists()
        assert_steps_follow_policy()
        assert Employee.history.count() == 50
        assert HardwareAsset.history.count() == assets
        assert Entitlement.history.count() == Entitlement.objects.count()
        assert "50 employees" in output

    def test_lifecycle_history_in_proportion_through_the_services(self):
        """Requests, steps, object permissions and delegations exist in proportion, as the approval
        services make them: each pending step can be decided by its approver's login (and only
        pending steps can), each pending request withdrawn by its requester; runs, tasks and audit
        events cover every leaver and pre-hire."""
        seed_scale(200)

        assert AccessRequest.objects.count() == 200 // 25
        assert set(AccessRequest.objects.values_list("status", flat=True)) <= {"pending", "rejected", "cancelled"}
        assert AccessRequest.objects.filter(status="pending").exists()
        assert_steps_follow_policy()
        pending = ApprovalStep.objects.filter(status="pending").select_related("approver")
        assert pending.exists()
        grants = set(ApprovalStepUserObjectPermission.objects.values_list("content_object_id", "user_id"))
        for step in pending:
            assert (step.pk, step.approver.user_id) in grants, step
        assert {pk for pk, _user in grants} == {step.pk for step in pending}  # no grant on a decided step
        cancel = set(AccessRequestUserObjectPermission.objects.values_list("content_object_id", "user_id"))
        assert cancel == set(AccessRequest.objects.filter(status="pending").values_list("pk", "employee__user_id"))
        assert ApprovalDelegation.objects.count() == 1
        assert AuditEvent.objects.filter(action=AuditEvent.Action.REQUEST).count() == 200 // 25

        leavers = Employee.objects.filter(status=EmployeeStatus.TERMINATED)
        assert ChecklistRun.objects.filter(kind="leave", status="done").count() == leavers.count() > 0
        pre_hires = Employee.objects.filter(status=EmployeeStatus.PRE_HIRE)
        assert ChecklistRun.objects.filter(kind="join", status="running").count() == pre_hires.count() > 0
        revokes = Task.objects.filter(run__kind="leave", action="revoke_entitlement").count()
        assert revokes == Entitlement.objects.filter(employee__in=leavers).count()
        assert AuditEvent.objects.filter(action=AuditEvent.Action.TERMINATE).count() == leavers.count()
        # The bulk events are sealed into the same hash chain as the services' own.
        report = audit_verify()
        assert report.ok and report.events == AuditEvent.objects.count(), [p.message for p in report.problems]
        assert Task.history.count() == Task.objects.count()
        # Nothing is left for a worker to run now: the pre-hires' tasks fall due on their first day.
        assert not runnable_tasks().filter(assignee_type="system").exists()
        # Approvers and requesters can sign in; nobody has a password.
        assert not Employee.objects.filter(reports__isnull=False, user__isnull=True).exists()
        assert not get_user_model().objects.filter(employee__isnull=False).exclude(password__startswith="!").exists()

    def test_rows_written_afterwards_get_fresh_ids(self):
        """seed_scale hands out ids itself; on PostgreSQL the sequences must have moved past them."""
        seed_scale(20)
        employee = EmployeeFactory()
        asset = HardwareAssetFactory()
        checkout = asset_check_out(asset=asset, employee=employee, acting_user=None)
        entitlement = EntitlementFactory(employee=employee)
        request = AccessRequestFactory(employee=employee)
        step = ApprovalStep.objects.create(request=request, order=1, kind="manager", approver=employee)
        for obj in (employee, asset, checkout, entitlement, request, step):
            assert obj.pk > 0

    def test_same_size_again_is_a_no_op_and_another_size_is_refused(self):
        seed_scale(30)
        before = all_row_counts()

        assert "nothing to do" in seed_scale(30)
        assert all_row_counts() == before
        with pytest.raises(CommandError, match="already holds 30 synthetic employees"):
            seed_scale(40)
        assert all_row_counts() == before

    def test_runs_next_to_the_demo_company(self):
        seed_demo()
        seed_scale(20)
        assert Employee.objects.filter(employee_number__startswith="S").count() == 20
        assert_checkouts_consistent()

    @pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", ""])
    def test_bad_input_is_refused(self, value):
        with pytest.raises(CommandError, match="--employees"):
            call_command("seed_scale", "--employees", value)
        assert not Employee.objects.exists()

    def test_employees_is_required(self):
        with pytest.raises(CommandError, match="--employees"):
            call_command("seed_scale")
