"""The joiner flow: a new employee's join run, and the reservation of their role's hardware kit.

The run is effective on the start date; its core steps reserve the kit three weeks before,
provision birthright access three days before and activate the person on day one.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.event_data import employee_data
from accounts.models import (
    Employee,
    EmployeeStatus,
)
from assets import services as asset_services
from assets.models import AssetStatus, HardwareAsset, RoleKitItem
from offboarding import engine
from offboarding.flows.common import CoreStep, aware, ensure_steps, held_by
from offboarding.models import (
    Assignee,
    ChecklistKind,
    ChecklistRun,
    RunStatus,
    Task,
)
from portal.events import event_emit
from portal.models import EventType

JOINER_STEPS = (
    CoreStep("reserve-kit", "Reserve the role's hardware kit", "reserve_kit", -21),
    CoreStep("provision-access", "Provision the role's birthright access", "provision_birthrights", -3),
    CoreStep("activate", "Activate the employee on day one", "activate_employee", 0),
)


@transaction.atomic
def joiner_start(*, employee: Employee, acting_user) -> ChecklistRun:
    """Start the join run of a new employee, effective on their start date at 09:00 local time.

    Idempotent: the employee's existing (open or done) join run is returned. Refused for a
    terminated employee. The run always holds the core steps (kit reservation, birthright
    provisioning, activation on day one) besides whatever the join templates add.
    """
    # The lock `engine.run_start` would take (with the manager a task may go to), taken once here.
    locked = Employee.objects.select_for_update(of=("self",)).select_related("manager").get(pk=employee.pk)
    if locked.status == EmployeeStatus.TERMINATED:
        raise ValidationError(f"{locked.full_name} is terminated; no join checklist can start.")
    existing = (
        ChecklistRun.objects.filter(employee=locked, kind=ChecklistKind.JOIN)
        .exclude(status=RunStatus.CANCELLED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if existing is not None:
        return existing
    # No join run but a cancelled one: `run_start`'s look for an open run would find nothing more.
    run = engine.run_create(
        employee=locked,
        kind=ChecklistKind.JOIN,
        event_date=locked.start_date,
        acting_user=acting_user,
        effective_at=aware(locked.start_date),
        details={"role": locked.role_id, "department": locked.department_id},
        queue=False,  # `run_advance` below queues what can run, core steps included
    )
    ensure_steps(run, JOINER_STEPS)
    event_emit(event_type=EventType.EMPLOYEE_JOINED, data=lambda: {**employee_data(locked), "run": run.pk})
    engine.run_advance(run=run)
    return run


def kit_reserve(*, employee: Employee, run: ChecklistRun, parent: Task | None = None, acting_user=None) -> dict:
    """Set aside in-stock assets for each item of the employee's role kit; a purchase task for IT for what is short.

    Counts what is already reserved for or held by the employee, so a second call reserves
    nothing more. Each asset is reserved through `assets.services.asset_reserve`. Rows are locked
    with SKIP LOCKED (PostgreSQL), so concurrent reservations for two joiners never take the same
    asset. A shortage becomes one IT task per kit item
    (key `purchase:<kit item>`).
    """
    employee = Employee.objects.select_related("role").get(pk=employee.pk)
    if employee.role_id is None:
        return {"reserved": [], "purchases": []}
    reserved, purchases = [], []
    for item in RoleKitItem.objects.filter(role_id=employee.role_id).select_related("asset_model").order_by("pk"):
        with transaction.atomic():
            # The employee before the assets, the order `asset_reserve` and check-outs lock them in.
            Employee.objects.select_for_update(no_key=True).only("pk").get(pk=employee.pk)
            have = (
                HardwareAsset.objects.filter(model_id=item.asset_model_id)
                .filter(Q(reserved_for=employee) | held_by(employee))
                .count()
            )
            need = item.quantity - have
            if need <= 0:
                continue
            candidates = list(
                HardwareAsset.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(model_id=item.asset_model_id, status=AssetStatus.IN_STOCK, reserved_for__isnull=True)
                .order_by("purchase_date", "asset_tag")[:need]
            )
            for asset in candidates:
                asset_services.asset_reserve(
                    asset=asset, employee=employee, acting_user=acting_user, detail={"run": run.pk}
                )
                reserved.append(asset.asset_tag)
            missing = need - len(candidates)
        if missing > 0:
            purchase = engine.task_add(
                run=run,
                key=f"purchase:{item.pk}",
                title=f"Buy {missing} × {item.asset_model} (none in stock)",
                assignee_type=Assignee.IT,
                parent=parent,
                due_at=timezone.now(),
                instructions=(
                    f"The {item.role} kit needs {item.quantity} × {item.asset_model}; {missing} could not be "
                    f"reserved from stock for the joiner starting on {employee.start_date:%Y-%m-%d}. Order them, add "
                    "them as hardware, then check them out to the joiner on day one."
                ),
                params={"kit_item": item.pk, "missing": missing},
            )
            purchases.append(purchase.pk)
    return {"reserved": reserved, "purchases": purchases}
