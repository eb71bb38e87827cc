"""What event hooks (`portal.events.event_emit`) say about people and access: the `data` of each event.

Natural keys only (employee number, work email, codes, application name), never personal contact data.
"""

from accounts.models import AccessRequest, Employee, Entitlement


def employee_data(employee: Employee) -> dict:
    """The person as a subscriber knows them; codes for their department, location and role."""
    manager = employee.manager
    return {
        "employee_number": employee.employee_number,
        "work_email": employee.work_email,
        "first_name": employee.preferred_name or employee.first_name,
        "last_name": employee.last_name,
        "title": employee.title,
        "status": employee.status,
        "department": employee.department.code if employee.department_id else None,
        "location": employee.location.code if employee.location_id else None,
        "role": employee.role.code if employee.role_id else None,
        "manager": manager.employee_number if manager is not None else None,
        "start_date": employee.start_date,
        "end_date": employee.end_date,
    }


def entitlement_data(entitlement: Entitlement, **extra) -> dict:
    return {
        "entitlement": entitlement.pk,
        "application": entitlement.application.name,
        "level": entitlement.level,
        "source": entitlement.source,
        "status": entitlement.status,
        "external_id": entitlement.external_id,
        "employee": {
            "employee_number": entitlement.employee.employee_number,
            "work_email": entitlement.employee.work_email,
        },
        **extra,
    }


def access_request_data(request: AccessRequest, *, decided_by=None) -> dict:
    return {
        "access_request": request.pk,
        "decision": request.status,
        "application": request.application.name,
        "level": request.level,
        "end_date": request.end_date,
        "decided_at": request.decided_at,
        "decided_by": decided_by.get_username() if getattr(decided_by, "pk", None) else None,
        "employee": {"employee_number": request.employee.employee_number, "work_email": request.employee.work_email},
    }
