"""Portal's storage behind scim2-server: SCIM Users are `accounts.Employee`, Groups are `accounts.Role`.

| SCIM (User) | Portal |
|---|---|
| id | Employee id |
| userName | work email (case-insensitive unique; a short name + the connection's username domain) |
| externalId | `external_id` |
| name.givenName / name.familyName | first / last name |
| nickName | preferred name; displayName (read-only) is preferred-or-first + last name |
| title | title |
| active | not terminated and no last day reached; false starts a leaver run (immediate cut-off) |
| emails | kept as sent (`scim_emails`); Portal's work email is userName |
| groups (read-only) | the person's role |
| enterprise employeeNumber | employee number (required, unique) |
| enterprise department | department, by name or code (a new name creates it) |
| enterprise costCenter (read-only) | the department's cost center |
| enterprise manager.value | manager (an Employee id) |

A new User starts a join run; a changed department or manager (or a group membership: the role)
applies a move; `active: false` and DELETE start a leaver run with an immediate cut-off. DELETE also
hides the person from SCIM (404 from then on); the record is never erased. The version (ETag) is a hash
of the resource as served, so it changes exactly when what the client reads changes.
"""

import datetime
import hashlib
import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, ProtectedError, Q, Subquery
from django.db.models.functions import Lower
from django.utils import timezone
from scim2_models import (
    InvalidFilterException,
    InvalidValueException,
    MutabilityException,
    NotFoundException,
    PreconditionFailedException,
    UniquenessException,
)
from scim2_server.storage import ScimStorage, SearchPage

from accounts import hooks
from accounts.models import Employee, EmployeeStatus, Role, ScimConnection
from accounts.scim import filters, services
from accounts.scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, MAX_RESULTS, USER_SCHEMA, provider
from accounts.services.employees import employee_create, employee_update


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def scim_error_of(exc: ValidationError):
    """A Portal refusal as a SCIM 400 (or 409 for a taken work email or employee number)."""
    text = _messages(exc)
    if "already" in text.lower() and ("email" in text.lower() or "number" in text.lower()):
        return UniquenessException(detail=text)
    return InvalidValueException(detail=text)


def _version(payload: dict) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f'W/"{digest[:20]}"'


def _ref_id(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def is_active(employee: Employee, today: datetime.date | None = None) -> bool:
    today = today or timezone.localdate()
    return (
        not employee.scim_inactive
        and employee.status != EmployeeStatus.TERMINATED
        and (employee.end_date is None or employee.end_date > today)
    )


def has_left(employee: Employee, today: datetime.date | None = None) -> bool:
    """Terminated, or cut off (last day today or before): what no SCIM write can undo."""
    return not employee.scim_inactive and not is_active(employee, today)


class PortalStorage(ScimStorage):
    """Reads and writes people and roles for one SCIM connection (the actor of every write)."""

    def __init__(self, connection: ScimConnection) -> None:
        self.connection = connection
        self.actor = connection.service_user
        self.via = f"scim:{connection.name}"

    # --- rendering --------------------------------------------------------------------------

    def user_name(self, employee: Employee) -> str:
        domain = self.connection.username_domain
        if domain and employee.work_email.lower().endswith(f"@{domain}"):
            return employee.work_email[: -len(domain) - 1]
        return employee.work_email

    def work_email(self, user_name: str) -> str:
        user_name = (user_name or "").strip()
        domain = self.connection.username_domain
        if domain and "@" not in user_name and user_name:
            return f"{user_name}@{domain}".lower()
        return user_name.lower()

    def user_payload(self, employee: Employee) -> dict:
        enterprise: dict = {"employeeNumber": employee.employee_number}
        if employee.department_id:
            enterprise["department"] = employee.department.name
            if employee.department.cost_center:
                enterprise["costCenter"] = employee.department.cost_center
        if employee.manager_id:
            enterprise["manager"] = {"value": str(employee.manager_id), "$ref": f"Users/{employee.manager_id}"}
        payload = {
            "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
            "id": str(employee.pk),
            "userName": self.user_name(employee),
            "name": {"givenName": employee.first_name, "familyName": employee.last_name},
            "displayName": employee.full_name,
            "active": is_active(employee),
            ENTERPRISE_SCHEMA: enterprise,
        }
        for key, value in (
            ("externalId", employee.external_id),
            ("nickName", employee.preferred_name),
            ("title", employee.title),
        ):
            if value:
                payload[key] = value
        if employee.scim_emails:
            payload["emails"] = employee.scim_emails
        if employee.role_id:
            payload["groups"] = [
                {"value": str(employee.role_id), "$ref": f"Groups/{employee.role_id}", "display": employee.role.name}
            ]
        return payload

    def group_payload(self, role: Role) -> dict:
        payload = {"schemas": [GROUP_SCHEMA], "id": str(role.pk), "displayName": role.name}
        if role.external_id:
            payload["externalId"] = role.external_id
        members = [
            {"value": str(pk), "$ref": f"Users/{pk}", "type": "User"} for pk in getattr(role, "scim_member_ids", [])
        ]
        if members:
            payload["members"] = members
        return payload

    def resource(self, resource_type, payload: dict, created, modified):
        model = provider().model_for(resource_type.name)
        payload = {
            **payload,
            "meta": {
                "resourceType": resource_type.name,
                "created": created.isoformat(),
                "lastModified": modified.isoformat(),
                "version": _version(payload),
            },
        }
        return model.model_validate(payload)

    def user_resource(self, resource_type, employee: Employee):
        return self.resource(resource_type, self.user_payload(employee), employee.created_at, employee.updated_at)

    def group_resource(self, resource_type, role: Role):
        # Roles keep no timestamps of their own: their first and last history rows say when.
        created, modified = getattr(role, "scim_created", None), getattr(role, "scim_modified", None)
        now = timezone.now()
        return self.resource(resource_type, self.group_payload(role), created or now, modified or created or now)

    # --- reading ----------------------------------------------------------------------------

    def employees(self):
        return Employee.objects.filter(scim_removed_at=None).select_related("department", "manager", "role")

    def roles(self):
        history = Role.history.model.objects.filter(id=OuterRef("pk")).values("history_date")
        return Role.objects.annotate(
            scim_created=Subquery(history.order_by("history_date")[:1]),
            scim_modified=Subquery(history.order_by("-history_date")[:1]),
        )

    def _with_members(self, roles: list[Role]) -> list[Role]:
        ids = [role.pk for role in roles]
        members: dict[int, list[int]] = {pk: [] for pk in ids}
        rows = (
            Employee.objects.filter(role_id__in=ids, scim_removed_at=None)
            .exclude(status=EmployeeStatus.TERMINATED)
            .order_by("pk")
            .values_list("role_id", "pk")
        )
        for role_id, pk in rows:
            members[role_id].append(pk)
        for role in roles:
            role.scim_member_ids = members[role.pk]
        return roles

    def _employee(self, resource_id, *, lock: bool = False) -> Employee:
        pk = _ref_id(resource_id)
        queryset = self.employees()
        if lock:
            queryset = queryset.select_for_update(of=("self",))
        employee = queryset.filter(pk=pk).first() if pk is not None else None
        if employee is None:
            raise NotFoundException(detail=f"User {resource_id} not found")
        return employee

    def _role(self, resource_id, *, lock: bool = False) -> Role:
        pk = _ref_id(resource_id)
        role = self.roles().filter(pk=pk).first() if pk is not None else None
        if role is None:
            raise NotFoundException(detail=f"Group {resource_id} not found")
        if lock:
            Role.objects.select_for_update().filter(pk=role.pk).first()
        return self._with_members([role])[0]

    def get(self, resource_type, resource_id, *, response_parameters=None):
        if resource_type.name == "User":
            return self.user_resource(resource_type, self._employee(resource_id))
        return self.group_resource(resource_type, self._role(resource_id))

    def _matching(self, resource_type, search_request, *, at_root: bool):
        """The ordered queryset of one resource type's matches (at the root, a filter on an attribute the type
        does not have matches none of its resources, RFC 7644 §3.4.2.1)."""
        is_user = resource_type.name == "User"
        columns = filters.USER_COLUMNS if is_user else filters.GROUP_COLUMNS
        queryset = self.employees() if is_user else self.roles()
        translator = filters.FilterTranslator(columns, username_domain=self.connection.username_domain)
        if search_request.filter is not None:
            try:
                q = translator.q(search_request.filter.ast)
            except InvalidFilterException:
                if at_root:
                    return queryset.none()
                raise
            if translator.annotations:
                queryset = queryset.annotate(**translator.annotations)
            queryset = queryset.filter(q)
        descending = str(getattr(search_request.sort_order, "value", search_request.sort_order) or "") == "descending"
        sortable = filters.SORTABLE_USER if is_user else filters.SORTABLE_GROUP
        try:
            ordering = filters.order_by(search_request.sort_by, sortable, descending)
        except InvalidFilterException:
            if not at_root:
                raise
            ordering = filters.order_by(None, sortable, descending)
        return queryset.order_by(*ordering)

    def _render(self, resource_type, rows: list) -> list:
        if resource_type.name == "User":
            return [self.user_resource(resource_type, employee) for employee in rows]
        return [self.group_resource(resource_type, role) for role in self._with_members(rows)]

    def search(self, resource_types, search_request, *, position=None) -> SearchPage:
        """One page of matches: a COUNT and a page query per type searched (Users, then Groups at the root)."""
        at_root = len(resource_types) > 1
        start = search_request.start_index_0 or 0
        count = MAX_RESULTS if search_request.count is None else min(search_request.count, MAX_RESULTS)
        total, resources = 0, []
        for resource_type in sorted(resource_types, key=lambda rt: rt.name != "User"):
            queryset = self._matching(resource_type, search_request, at_root=at_root)
            matches = queryset.count()
            offset = max(start - total, 0)
            wanted = count - len(resources)
            if wanted > 0 and offset < matches:
                resources.extend(self._render(resource_type, list(queryset[offset : offset + wanted])))
            total += matches
        return SearchPage(total, resources)

    # --- writing people ---------------------------------------------------------------------

    def _user_fields(self, resource) -> tuple[dict, dict, bool | None]:
        """What a User resource asks for: identity details, org values (department, manager), active."""
        data = resource.model_dump(exclude_none=False)
        enterprise = data.get(ENTERPRISE_SCHEMA) or {}
        name = data.get("name") or {}
        details = {
            "work_email": self.work_email(data.get("userName") or ""),
            "first_name": (name.get("givenName") or "").strip(),
            "last_name": (name.get("familyName") or "").strip(),
            "preferred_name": (data.get("nickName") or "").strip(),
            "title": (data.get("title") or "").strip(),
            "external_id": (data.get("externalId") or "").strip(),
            "scim_emails": data.get("emails") or [],
            "employee_number": (enterprise.get("employeeNumber") or "").strip(),
        }
        missing = [
            label
            for label, key in (
                ("userName", "work_email"),
                ("name.givenName", "first_name"),
                ("name.familyName", "last_name"),
                (f"{ENTERPRISE_SCHEMA}:employeeNumber", "employee_number"),
            )
            if not details[key]
        ]
        if missing:
            raise InvalidValueException(detail=f"Portal needs {', '.join(missing)} for every person.")
        org: dict = {"department": (enterprise.get("department") or "").strip() or None}
        manager = enterprise.get("manager") or {}
        manager_value = manager.get("value") if isinstance(manager, dict) else manager
        org["manager"] = manager_value if manager_value not in (None, "") else None
        return details, org, data.get("active")

    def _org_objects(self, org: dict, *, employee: Employee | None = None) -> dict:
        out = {}
        out["department"] = (
            services.department_for_name(name=org["department"], acting_user=self.actor) if org["department"] else None
        )
        if org["manager"] is None:
            out["manager"] = None
        else:
            pk = _ref_id(org["manager"])
            manager = Employee.objects.filter(pk=pk, scim_removed_at=None).first() if pk is not None else None
            if manager is None:
                raise InvalidValueException(detail=f"The manager {org['manager']} is no User in Portal.")
            if employee is not None and manager.pk == employee.pk:
                raise InvalidValueException(detail="A person cannot be their own manager.")
            out["manager"] = manager
        return out

    def _check_unique(self, details: dict, exclude_pk=None) -> None:
        """409 for a work email or employee number another person has, whatever the case: one query, on the
        lower-case indexes of both columns (a lookup that stays as fast in a company of 100,000)."""
        email, number = details["work_email"].lower(), details["employee_number"].lower()
        others = Employee.objects.exclude(pk=exclude_pk) if exclude_pk else Employee.objects.all()
        taken = list(
            others.annotate(_email=Lower("work_email"), _number=Lower("employee_number"))
            .filter(Q(_email=email) | Q(_number=number))
            .values_list("_email", "_number")[:2]
        )
        if any(row[0] == email for row in taken):
            raise UniquenessException(detail=f"Another person already has the work email {details['work_email']}.")
        if taken:
            raise UniquenessException(
                detail=f"Another person already has the employee number {details['employee_number']}."
            )

    def create_user(self, resource_type, resource):
        details, org, active = self._user_fields(resource)
        self._check_unique(details)
        today = timezone.localdate()
        objects = self._org_objects(org)
        # Pushed inactive (Okta's staged users, Entra's disabled accounts): a pre-hire whose join run
        # waits until the identity provider activates them.
        employee = Employee(**details, **objects, start_date=today, scim_inactive=active is False)
        try:
            employee = employee_create(employee=employee, acting_user=self.actor, via=self.via, unique_checked=True)
            if active is not False:
                hooks.employee_joined.fire(employee=employee, acting_user=self.actor)
        except ValidationError as exc:
            raise scim_error_of(exc) from exc
        # Served from what was saved (its department and manager are the objects just looked up; a new
        # person has no role): the join run changes nothing a User shows, so no second read.
        return self.user_resource(resource_type, employee)

    def update_user(self, resource_type, resource, expected_version):
        employee = self._employee(resource.id, lock=True)
        current = self.user_resource(resource_type, employee)
        if expected_version is not None and current.meta.version != expected_version:
            raise PreconditionFailedException(detail="The User changed since it was read; read it again.")
        details, org, active = self._user_fields(resource)
        self._check_unique(details, exclude_pk=employee.pk)
        was_active = is_active(employee)
        if active is True and has_left(employee):
            raise MutabilityException(
                detail=f"{employee.full_name} has left (or is leaving today); Portal does not reactivate a leaver. "
                "A person who comes back is pushed as a new User with a new employee number."
            )
        try:
            if any(getattr(employee, name) != value for name, value in details.items()):  # read under the lock
                services.employee_details_update(
                    employee=employee, changes=details, acting_user=self.actor, via=self.via
                )
            objects = self._org_objects(org, employee=employee)
            moves = {
                name: value
                for name, value in objects.items()
                if getattr(employee, f"{name}_id") != (value.pk if value else None)
            }
            if moves and (has_left(employee) or employee.scim_inactive):
                # Nothing to provision or revoke for someone who left or has not started: saved with history.
                employee_update(employee=employee, changes=moves, acting_user=self.actor)
            elif moves:
                hooks.employee_moved.fire(employee=employee, changes=moves, acting_user=self.actor)
            if active is True and employee.scim_inactive:
                services.employee_details_update(
                    employee=employee, changes={"scim_inactive": False}, acting_user=self.actor, via=self.via
                )
                hooks.employee_joined.fire(employee=employee, acting_user=self.actor)
            if active is False and was_active:
                hooks.employee_left_now.fire(
                    employee=employee, acting_user=self.actor, reason=f"Deactivated by {self.connection.name} (SCIM)"
                )
        except ValidationError as exc:
            raise scim_error_of(exc) from exc
        return self.user_resource(resource_type, self._employee(employee.pk))

    def delete_user(self, resource_id, expected_version):
        employee = self._employee(resource_id, lock=True)
        try:
            if not has_left(employee):
                hooks.employee_left_now.fire(
                    employee=employee, acting_user=self.actor, reason=f"Deleted by {self.connection.name} (SCIM)"
                )
            services.employee_details_update(
                employee=employee, changes={"scim_removed_at": timezone.now()}, acting_user=self.actor, via=self.via
            )
        except ValidationError as exc:
            raise scim_error_of(exc) from exc

    # --- writing roles ----------------------------------------------------------------------

    def _members(self, resource) -> list[Employee]:
        data = resource.model_dump()
        ids = []
        for member in data.get("members") or []:
            pk = _ref_id(member.get("value"))
            if pk is None:
                raise InvalidValueException(detail=f"The member {member.get('value')!r} is no User in Portal.")
            ids.append(pk)
        found = {e.pk: e for e in Employee.objects.filter(pk__in=ids, scim_removed_at=None)}
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            raise InvalidValueException(detail=f"These members are no Users in Portal: {', '.join(missing)}.")
        return [found[pk] for pk in dict.fromkeys(ids)]

    def _set_members(self, role: Role, wanted: list[Employee], current_ids: list[int]) -> None:
        wanted_ids = {e.pk for e in wanted}
        for employee in wanted:
            if employee.role_id != role.pk:
                hooks.employee_moved.fire(employee=employee, changes={"role": role}, acting_user=self.actor)
        for employee in Employee.objects.filter(pk__in=set(current_ids) - wanted_ids, role=role):
            hooks.employee_moved.fire(employee=employee, changes={"role": None}, acting_user=self.actor)

    def create_group(self, resource_type, resource):
        name = (resource.display_name or "").strip()
        if not name:
            raise InvalidValueException(detail="A Group needs a displayName (the role's name).")
        if Role.objects.filter(name__iexact=name).exists():
            raise UniquenessException(detail=f"There is already a role named {name}.")
        try:
            role = services.role_create(
                name=name, external_id=(resource.external_id or "").strip(), acting_user=self.actor, via=self.via
            )
            self._set_members(role, self._members(resource), [])
        except ValidationError as exc:
            raise scim_error_of(exc) from exc
        return self.group_resource(resource_type, self._role(role.pk))

    def update_group(self, resource_type, resource, expected_version):
        role = self._role(resource.id, lock=True)
        current = self.group_resource(resource_type, role)
        if expected_version is not None and current.meta.version != expected_version:
            raise PreconditionFailedException(detail="The Group changed since it was read; read it again.")
        name = (resource.display_name or "").strip()
        if not name:
            raise InvalidValueException(detail="A Group needs a displayName (the role's name).")
        if Role.objects.filter(name__iexact=name).exclude(pk=role.pk).exists():
            raise UniquenessException(detail=f"There is already a role named {name}.")
        try:
            services.role_rename(
                role=role, name=name, external_id=(resource.external_id or "").strip(), acting_user=self.actor
            )
            self._set_members(role, self._members(resource), role.scim_member_ids)
        except ValidationError as exc:
            raise scim_error_of(exc) from exc
        return self.group_resource(resource_type, self._role(role.pk))

    def delete_group(self, resource_id, expected_version):
        role = self._role(resource_id, lock=True)
        try:
            services.role_delete(role=role, acting_user=self.actor)
        except ValidationError as exc:
            raise MutabilityException(detail=_messages(exc)) from exc
        except ProtectedError as exc:
            raise MutabilityException(
                detail=f"The role {role.name} is still used by other records; IT can retire it in the admin."
            ) from exc

    # --- the storage interface --------------------------------------------------------------

    def create(self, resource_type, resource):
        if resource_type.name == "User":
            return self.create_user(resource_type, resource)
        return self.create_group(resource_type, resource)

    def update(self, resource_type, resource, *, expected_version=None):
        if resource_type.name == "User":
            return self.update_user(resource_type, resource, expected_version)
        return self.update_group(resource_type, resource, expected_version)

    def delete(self, resource_type, resource_id, *, expected_version=None):
        if resource_type.name == "User":
            return self.delete_user(resource_id, expected_version)
        return self.delete_group(resource_id, expected_version)
