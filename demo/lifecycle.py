"""The demo company's lifecycle checklists, made by the real flows of `offboarding`.

The demo checklist templates; join runs for the three pre-hires who start first; a mover in the
grace period before their old access is revoked; a leaver whose cut-off was a few days ago, with
one device back and one still out; and everyone who resigned and leaves in the coming weeks. No
worker runs during `seed_demo`, so the runs' due automated tasks are run here, as the worker would.
The past leaver's run is then moved back in time (`backdate`), as the services only cut off now.
"""

import datetime

from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    AccessRequest,
    ConnectorType,
    EmployeeStatus,
    EmploymentType,
    Entitlement,
)
from accounts.services.employees import employee_update
from accounts.services.entitlements import entitlement_revoke
from assets.models import AssetStatus, HardwareAsset
from demo.checklists import demo_templates_sync
from demo.company import Person
from offboarding import engine
from offboarding.flows.common import end_of_day
from offboarding.flows.joiner import joiner_start
from offboarding.flows.leaver import employee_terminate
from offboarding.flows.mover import mover_apply
from offboarding.flows.returns import hardware_return_receive
from offboarding.models import Assignee, ChecklistRun, HardwareReturn, Task, TaskStatus

LEAVER_CUT_OFF_DAYS_AGO = 3  # the demo leaver's cut-off: the end of their last day, this many days ago


class LifecycleMixin:
    """The checklist part of `DemoBuilder`."""

    def checklists(self) -> list[ChecklistRun]:
        """The demo checklist templates, and runs IT can watch in the admin, made by the real flows.

        - join: the three pre-hires who start first (kit reserved from stock now; access is
          provisioned from three days before day one);
        - move: an account executive moved to Customer Success two days ago, in the grace period
          before their sales access is revoked; IT has created one of the new accounts;
        - leave: someone whose cut-off was `LEAVER_CUT_OFF_DAYS_AGO` days ago: access revoked,
          approvals handed over, one device back and one still out (so the run is still open);
        - future leave: everyone who resigned and leaves in the coming weeks.

        No worker runs during the command, so the runs' due automated tasks are run here, as the
        worker would (`drive`). Nor do the demo's target systems (`demo.targets`: `make run` starts
        them beside the web server): the leaver's accounts on the SCIM and webhook applications were
        removed by IT by hand; later automated tasks reach the targets once they run.
        """
        itadmin, helpdesk = self.users["itadmin"], self.users["helpdesk"]
        demo_templates_sync()
        joins = self.demo_joiners(itadmin)
        move = self.demo_mover(itadmin)
        leave = self.demo_leaver(itadmin, helpdesk)
        future = self.demo_future_leavers(itadmin)
        self.notes.append(
            f"Checklists: {len(joins)} joiners, 1 mover in the grace period, 1 leaver with hardware still out, "
            f"{len(future)} future leavers (admin: Offboarding → Checklist runs)."
        )
        self.notes.append(
            "Target systems: the SCIM applications (Corporate Directory, Slack, Zoom, 1Password, Figma, Miro) and "
            "Helix Ops Console (webhook) are served on 127.0.0.1 by `manage.py demo_targets`, which `make run` "
            "starts beside the web server and worker (web port + 1 and + 2); their automated tasks wait for it."
        )
        return [*joins, move, leave, *future]

    def drive(self, runs: list[ChecklistRun]) -> None:
        """Run the runs' queued automated tasks now, as the worker would (the command runs without one)."""
        for _ in range(50):
            queued = list(
                Task.objects.filter(run__in=runs, status=TaskStatus.QUEUED).order_by("pk").values_list("pk", flat=True)
            )
            if not queued:
                return
            for task_id in queued:
                engine.task_execute(task_id=task_id)

    def _candidates(self, **where) -> list[Person]:
        """Active individual contributors without a login, an end date, an owned application or any
        access request (a change of manager would leave their requests' approvers behind)."""
        managers = {p.manager.index for p in self.people if p.manager}
        owners = {a.owner_id for a in self.apps.values()}
        requesters = set(AccessRequest.objects.values_list("employee_id", flat=True))
        return [
            p
            for p in self.people
            if p.status == EmployeeStatus.ACTIVE
            and p.employment_type == EmploymentType.FULL_TIME
            and p.end is None
            and p.key is None
            and p.index not in managers
            and p.obj.pk not in owners
            and p.obj.pk not in requesters
            and all(getattr(p, name) == value for name, value in where.items())
        ]

    def demo_joiners(self, itadmin) -> list[ChecklistRun]:
        pre_hires = sorted(
            (p for p in self.people if p.status == EmployeeStatus.PRE_HIRE), key=lambda p: (p.start, p.index)
        )
        runs = [joiner_start(employee=p.obj, acting_user=itadmin) for p in pre_hires[:3]]
        self.drive(runs)
        return runs

    def demo_mover(self, itadmin) -> ChecklistRun:
        mover = self._candidates(role="sales", title="Account Executive")[0]
        lead = next(p for p in self.people if p.title == "Customer Success Lead, EMEA")
        employee_update(employee=mover.obj, changes={"title": "Customer Success Manager"}, acting_user=itadmin)
        run = mover_apply(
            employee=mover.obj,
            changes={"role": self.roles["customer-success"], "department": self.departments["CS"], "manager": lead.obj},
            acting_user=itadmin,
            effective_date=self.today - datetime.timedelta(days=2),
        )
        self.drive([run])
        created = (
            run.tasks.filter(action="provision_entitlement", status=TaskStatus.PENDING, assignee_type=Assignee.IT)
            .order_by("pk")
            .first()
        )
        if created is not None:
            engine.task_complete(task=created, acting_user=itadmin, note="Account created by hand.")
        return run

    def demo_leaver(self, itadmin, helpdesk) -> ChecklistRun:
        held = {}
        for holder_id in HardwareAsset.objects.filter(status=AssetStatus.ASSIGNED).values_list(
            "assigned_to", flat=True
        ):
            held[holder_id] = held.get(holder_id, 0) + 1
        leaver = next(p for p in self._candidates() if held.get(p.obj.pk, 0) >= 2 and p.role != "sales")
        last_day = self.today - datetime.timedelta(days=LEAVER_CUT_OFF_DAYS_AGO + 1)
        run = employee_terminate(
            employee=leaver.obj, last_day=last_day, acting_user=itadmin, reason="Resigned: moving abroad."
        )
        # No target system runs during seed_demo: IT removed those accounts by hand at the exit interview.
        automated = Entitlement.objects.filter(employee=leaver.obj, status__in=LIVE_ENTITLEMENT_STATUSES).exclude(
            application__connector=ConnectorType.MANUAL
        )
        for entitlement in automated:
            entitlement_revoke(
                entitlement=entitlement, acting_user=itadmin, reason="Removed by hand at the exit interview."
            )
        self.drive([run])
        # Manual applications are handed to IT; the helpdesk removes the accounts, the cut-off goes on.
        for _ in range(20):
            pending = run.tasks.filter(status=TaskStatus.PENDING, assignee_type=Assignee.IT).exclude(action="")
            if not pending.exists():
                break
            for task in pending.order_by("pk"):
                engine.task_complete(task=task, acting_user=helpdesk, note="Done by hand.")
            self.drive([run])
        mailbox = run.tasks.filter(key__endswith=":archive-mailbox", status=TaskStatus.PENDING).first()
        if mailbox is not None:
            engine.task_complete(task=mailbox, acting_user=helpdesk, note="Archived; auto-reply on for 90 days.")
        returned = HardwareReturn.objects.filter(run=run).order_by("asset__asset_tag").first()
        hardware_return_receive(item=returned, acting_user=helpdesk, note="Dropped off at the front desk.")
        self.backdate(run, run.effective_at - end_of_day(last_day))
        return run

    def backdate(self, run: ChecklistRun, delta: datetime.timedelta) -> None:
        """Move a run's clock back by `delta` (its cut-off may not be in the past in the services).

        The run, its tasks and its hardware returns (due dates included) are shifted; a return
        received today stays received today. History rows and the audit log keep the real times.
        """

        def shifted(obj, names):
            for name in names:
                value = getattr(obj, name)
                if value is not None:
                    setattr(obj, name, value - delta)
            return obj

        run_fields = ["effective_at", "created_at", "completed_at", "last_revocation_at"]
        run = shifted(ChecklistRun.objects.get(pk=run.pk), run_fields)
        run.details = {**run.details, "cut_off": run.effective_at.isoformat()}
        ChecklistRun.objects.bulk_update([run], [*run_fields, "details"])
        task_fields = [
            "due_at",
            "created_at",
            "queued_at",
            "started_at",
            "completed_at",
            "not_before",
            "last_reminded_at",
        ]
        Task.objects.bulk_update([shifted(t, task_fields) for t in run.tasks.all()], task_fields)
        return_fields = ["due_date", "created_at", "shipped_at", "last_reminded_at"]
        HardwareReturn.objects.bulk_update(
            [shifted(r, return_fields) for r in HardwareReturn.objects.filter(run=run)], return_fields
        )

    def demo_future_leavers(self, itadmin) -> list[ChecklistRun]:
        """Everyone who resigned and leaves in the coming weeks (their hardware is already pending return)."""
        leaving = [
            p
            for p in self.people
            if p.status == EmployeeStatus.ACTIVE
            and p.end is not None
            and p.end > self.today
            and p.employment_type != EmploymentType.INTERN
        ]
        runs = [
            employee_terminate(employee=p.obj, last_day=p.end, acting_user=itadmin, reason="Resigned.") for p in leaving
        ]
        self.drive(runs)
        return runs
