"""Access changes carried out in target systems through connectors, and their manual confirmations.

The lifecycle engine's actions call these; each is idempotent and takes the task id as
`idempotency_key`. No database transaction is held open during a connector call (a slow
directory must not block the database); state moves by conditional updates instead:
`pending → active` on provisioning, `active → revoking → revoked` on revocation.
A manual connector raises `ManualActionRequired`; the person who does the work confirms it
with `entitlement_confirm_provisioned` / `entitlement_confirm_revoked` /
`entitlement_confirm_level_changed`.

A connector failure (`ConnectorError`, in the target system's words) leaves the entitlement
where it was (`pending`, `revoking`, or at its old level) so that the task can be retried.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import sql
from django.utils import timezone

from accounts.connectors import connector_for
from accounts.event_data import entitlement_data
from accounts.models import (
    LIVE_ENTITLEMENT_STATUSES,
    Application,
    ConnectorType,
    Employee,
    Entitlement,
    EntitlementSource,
    EntitlementStatus,
)
from accounts.services.sod import sod_grant_check
from portal.audit import audit_record
from portal.events import event_emit
from portal.history import set_history_user
from portal.models import AuditEvent, EventType


def entitlement_plan(
    *,
    employee: Employee,
    application: Application,
    level: str,
    source: str = EntitlementSource.BIRTHRIGHT,
    acting_user=None,
    expires_at=None,
) -> Entitlement:
    """The employee's live entitlement to `application`, creating a `pending` one if there is none.

    Idempotent: an existing live entitlement (any level) is returned as it is.
    """
    existing = Entitlement.objects.filter(
        employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES
    ).first()
    if existing is not None:
        return existing
    entitlement = Entitlement(
        employee=employee,
        application=application,
        level=level,
        source=source,
        status=EntitlementStatus.PENDING,
        expires_at=expires_at,
    )
    entitlement.full_clean(validate_constraints=False)
    set_history_user(entitlement, acting_user)
    try:
        with transaction.atomic():
            entitlement.save()
    except IntegrityError:
        return Entitlement.objects.get(employee=employee, application=application, status__in=LIVE_ENTITLEMENT_STATUSES)
    return entitlement


def _set_status(entitlement: Entitlement, acting_user, *, expected: tuple[str, ...], **fields) -> bool:
    """Move `entitlement` to `fields` if its status is one of `expected`, with a history row naming
    `acting_user`; False (nothing written) when another worker moved it first.

    Runs in the caller's transaction (no savepoint of its own), or in its own when there is none:
    the update and its history row commit together. Where the database has UPDATE ... RETURNING
    (PostgreSQL, SQLite 3.35+) the conditional update returns the row as it left it, and the
    history row is made from that: two statements, the row never read before. Elsewhere a locked
    read, then a save. Either way `entitlement` (its related objects kept) holds the row as written.
    """
    with transaction.atomic(savepoint=False):
        connection = connections[router.db_for_write(Entitlement)]
        if connection.vendor in ("postgresql", "sqlite") and connection.features.can_return_columns_from_insert:
            current = _update_returning(connection, entitlement.pk, expected, fields)
            if current is None:
                return False
            set_history_user(current, acting_user)
            Entitlement.history.bulk_history_create([current], update=True)
        else:
            current = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
            if current.status not in expected:
                return False
            for name, value in fields.items():
                setattr(current, name, value)
            set_history_user(current, acting_user)
            current.save(update_fields=list(fields))
    for field in Entitlement._meta.concrete_fields:
        # Same foreign key ids as before: the employee and application already loaded stay.
        setattr(entitlement, field.attname, getattr(current, field.attname))
    return True


def _update_returning(connection, pk: int, expected: tuple[str, ...], fields: dict) -> Entitlement | None:
    """`UPDATE ... SET fields WHERE pk = pk AND status IN expected RETURNING *`: the row as updated, or None.

    The statement is Django's own compiled update (values prepared by the fields), with RETURNING
    added; the conditions are on the entitlement row only, so PostgreSQL re-checks them after
    waiting for a concurrent writer's row lock, and two workers cannot both move it.
    """
    query = Entitlement.objects.filter(pk=pk, status__in=expected).query.chain(sql.UpdateQuery)
    query.add_update_values(fields)
    statement, params = query.get_compiler(connection=connection).as_sql()
    columns = ", ".join(connection.ops.quote_name(f.column) for f in Entitlement._meta.concrete_fields)
    rows = list(Entitlement.objects.db_manager(connection.alias).raw(f"{statement} RETURNING {columns}", params))
    return rows[0] if rows else None


def _run(run: int | None) -> dict:
    """The checklist run that made the change, for its audit event ("— leaver run #41"); none outside a run."""
    return {"run": run} if run is not None else {}


def entitlement_provision(
    *, entitlement: Entitlement, idempotency_key: str, acting_user=None, run: int | None = None
) -> Entitlement:
    """Create the account in the target system and mark the entitlement active.

    Already active: returns at once, with no call to the target. Raises ConnectorError (retry
    later) or ManualActionRequired (a person finishes it). If the access was revoked while
    the target was being called, the account just created is revoked again.
    """
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.ACTIVE:
        return entitlement
    if entitlement.status != EntitlementStatus.PENDING:
        raise ValidationError(
            f"{entitlement} is {entitlement.get_status_display().lower()}; only pending access can be provisioned."
        )
    # Never create a separation-of-duties conflict silently: refused (not retried) unless excepted.
    sod_grant_check(entitlement=entitlement, acting_user=acting_user)
    connector = connector_for(entitlement.application)
    state = connector.provision(employee=entitlement.employee, level=entitlement.level, idempotency_key=idempotency_key)
    _mark_active(
        entitlement, acting_user, external_id=state.external_id, via=entitlement.application.connector, run=run
    )
    if entitlement.status != EntitlementStatus.ACTIVE:
        # Not pending any more: a deprovisioning overtook this call, and its revoke may have
        # run before our provision reached the target. Undo ours so no account outlives it.
        entitlement.refresh_from_db()
        if entitlement.status in (EntitlementStatus.REVOKING, EntitlementStatus.REVOKED):
            connector.revoke(
                employee=entitlement.employee,
                external_id=state.external_id or entitlement.external_id,
                idempotency_key=idempotency_key,
            )
    return entitlement


@transaction.atomic  # the status change and its audit event commit together, or neither
def _mark_active(entitlement: Entitlement, acting_user, *, external_id: str, via: str, run=None) -> Entitlement:
    if _set_status(
        entitlement,
        acting_user,
        expected=(EntitlementStatus.PENDING,),
        status=EntitlementStatus.ACTIVE,
        granted_at=timezone.now(),
        external_id=external_id or entitlement.external_id,
    ):
        audit_record(
            action=AuditEvent.Action.GRANT,
            target=entitlement,
            acting_user=acting_user,
            detail={
                "employee": entitlement.employee_id,
                "application": entitlement.application_id,
                "level": entitlement.level,
                "source": entitlement.source,
                "via": via,
                **_run(run),
            },
        )
        event_emit(event_type=EventType.ENTITLEMENT_GRANTED, data=lambda: entitlement_data(entitlement, via=via))
    return entitlement


def entitlement_confirm_provisioned(
    *, entitlement: Entitlement, acting_user, external_id: str = "", run: int | None = None
) -> Entitlement:
    """A person created the account by hand: mark the pending entitlement active. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.ACTIVE:
        return entitlement
    if entitlement.status != EntitlementStatus.PENDING:
        raise ValidationError(
            f"{entitlement} is {entitlement.get_status_display().lower()}; only pending access can be confirmed."
        )
    return _mark_active(entitlement, acting_user, external_id=external_id, via="manual", run=run)


def entitlement_deprovision(
    *, entitlement: Entitlement, idempotency_key: str, acting_user=None, reason: str = "", run: int | None = None
) -> Entitlement:
    """Remove the account in the target system and mark the entitlement revoked (its seat returns).

    Already revoked: returns at once. Access first moves to `revoking` (so a provisioning still
    queued can no longer activate it), then the target is called, then it is `revoked`.
    A pending entitlement of a manual application is revoked without a call (nobody created
    the account yet); for an automated connector the target is still asked to revoke, as a
    provisioning whose call succeeded but whose worker died before recording it may have
    created the account (revoking an absent account is a no-op there).
    """
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    connector = connector_for(entitlement.application)
    if entitlement.status == EntitlementStatus.PENDING and connector.kind == ConnectorType.MANUAL:
        return _mark_revoked(entitlement, acting_user, reason=reason or "never provisioned", via="none", run=run)
    _set_status(
        entitlement,
        acting_user,
        expected=(EntitlementStatus.PENDING, EntitlementStatus.ACTIVE),
        status=EntitlementStatus.REVOKING,
    )
    connector.revoke(
        employee=entitlement.employee, external_id=entitlement.external_id, idempotency_key=idempotency_key
    )
    return _mark_revoked(entitlement, acting_user, reason=reason, via=entitlement.application.connector, run=run)


@transaction.atomic  # the status change and its audit event commit together, or neither
def _mark_revoked(entitlement: Entitlement, acting_user, *, reason: str, via: str, run=None) -> Entitlement:
    if _set_status(
        entitlement,
        acting_user,
        expected=(EntitlementStatus.PENDING, EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING),
        status=EntitlementStatus.REVOKED,
        revoked_at=timezone.now(),
    ):
        audit_record(
            action=AuditEvent.Action.REVOKE,
            target=entitlement,
            acting_user=acting_user,
            detail={
                "employee": entitlement.employee_id,
                "application": entitlement.application_id,
                "reason": reason,
                "via": via,
                **_run(run),
            },
        )
        event_emit(
            event_type=EventType.ENTITLEMENT_REVOKED, data=lambda: entitlement_data(entitlement, reason=reason, via=via)
        )
    return entitlement


def entitlement_confirm_revoked(
    *, entitlement: Entitlement, acting_user, reason: str = "", run: int | None = None
) -> Entitlement:
    """A person removed the account by hand: mark the entitlement revoked. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.status == EntitlementStatus.REVOKED:
        return entitlement
    return _mark_revoked(entitlement, acting_user, reason=reason, via="manual", run=run)


def entitlement_change_level(
    *, entitlement: Entitlement, level: str, idempotency_key: str, acting_user=None, run: int | None = None
) -> Entitlement:
    """Change the level of an active entitlement in the target system, then here. Idempotent."""
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if level not in entitlement.application.access_levels:
        raise ValidationError(f"{entitlement.application} has no level {level!r}.")
    if entitlement.level == level:
        return entitlement
    if entitlement.status != EntitlementStatus.ACTIVE:
        raise ValidationError(f"{entitlement} is not active; its level cannot be changed.")
    sod_grant_check(entitlement=entitlement, level=level, acting_user=acting_user)
    state = connector_for(entitlement.application).change_level(
        employee=entitlement.employee,
        external_id=entitlement.external_id,
        level=level,
        idempotency_key=idempotency_key,
    )
    return _mark_level(
        entitlement,
        acting_user,
        level=level,
        external_id=state.external_id if state is not None else "",
        via=entitlement.application.connector,
        run=run,
    )


@transaction.atomic  # the status change and its audit event commit together, or neither
def _mark_level(
    entitlement: Entitlement, acting_user, *, level: str, external_id: str, via: str, run=None
) -> Entitlement:
    previous = entitlement.level
    fields = {"level": level}
    if external_id and external_id != entitlement.external_id:
        fields["external_id"] = external_id
    if _set_status(entitlement, acting_user, expected=(EntitlementStatus.ACTIVE,), **fields):
        audit_record(
            action=AuditEvent.Action.LEVEL_CHANGED,
            target=entitlement,
            acting_user=acting_user,
            detail={"from": previous, "to": level, "via": via, **_run(run)},
        )
    return entitlement


def entitlement_confirm_level_changed(
    *, entitlement: Entitlement, level: str, acting_user, run: int | None = None
) -> Entitlement:
    """A person changed the level by hand in the target system (manual connector): record the new level.

    Idempotent: the level it holds already returns at once (also when the application no longer
    offers it). Refused for a level the application does not have, or access that is not active.
    """
    entitlement = Entitlement.objects.select_related("employee", "application").get(pk=entitlement.pk)
    if entitlement.level == level:
        return entitlement
    if level not in entitlement.application.access_levels:
        raise ValidationError(f"{entitlement.application} has no level {level!r}.")
    if entitlement.status != EntitlementStatus.ACTIVE:
        raise ValidationError(f"{entitlement} is not active; its level cannot be changed.")
    return _mark_level(entitlement, acting_user, level=level, external_id="", via="manual", run=run)


def applications_to_forget(*, employee: Employee) -> list[Application]:
    """The applications where `employee` holds or held an account and whose connector can forget, by name."""
    from accounts.connectors.base import connector_registry

    held = Application.objects.filter(entitlements__employee=employee).distinct().order_by("name")
    return [app for app in held if getattr(connector_registry.get(app.connector), "supports_forget", False)]


def account_forget(*, employee: Employee, application: Application, idempotency_key: str, acting_user=None) -> dict:
    """Ask `application`'s connector to erase what it keeps about a purged person; one audit event when done.

    Refused (ValidationError, not retried) for a person not yet anonymised by the retention purge
    (the target would be told to forget someone Portal still keeps) and for a connector that
    cannot forget. The account is named by employee number and the last external id Portal holds.
    Idempotent: the connector forgets by state (LDAP) or by `idempotency_key` (webhook), and the
    `account_forgotten` event is written once per application.
    """
    employee = Employee.objects.get(pk=employee.pk)
    if employee.anonymised_at is None:
        raise ValidationError(
            f"Employee {employee.employee_number} has not been purged; {application.name} is only asked "
            "to forget a person after the retention purge."
        )
    connector = connector_for(application)
    if not connector.supports_forget:
        raise ValidationError(f"{application.name} uses the {connector.kind} connector, which cannot forget a person.")
    latest = (
        Entitlement.objects.filter(employee=employee, application=application)
        .exclude(external_id="")
        .order_by("-pk")
        .first()
    )
    state = connector.forget(
        employee=employee, external_id=latest.external_id if latest else "", idempotency_key=idempotency_key
    )
    outcome = {"application": application.pk, "connector": connector.kind, "exists": state.exists}
    with transaction.atomic():
        Employee.objects.select_for_update(of=("self",)).get(pk=employee.pk)
        done = AuditEvent.objects.filter(
            action=AuditEvent.Action.ACCOUNT_FORGOTTEN,
            target_type=Employee._meta.label,
            target_id=str(employee.pk),
            personal__detail__application=application.pk,
        ).exists()
        if not done:
            audit_record(
                action=AuditEvent.Action.ACCOUNT_FORGOTTEN, target=employee, acting_user=acting_user, detail=outcome
            )
    return outcome
