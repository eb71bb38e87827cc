"""Entry points the queue calls for accounts. They take ids only and call services."""

from accounts.services import hr_import


def employee_import_run(import_id: int) -> str:
    """Import a confirmed HR file (see `hr_import.employee_import_run`); a second delivery does nothing."""
    return hr_import.employee_import_run(import_id=import_id).status


def employee_imports_forget_stale() -> int:
    """Every 10 minutes: abandon HR import previews nobody confirmed in time, deleting their cells."""
    return hr_import.employee_imports_forget_stale()
