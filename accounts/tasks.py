"""Entry points the queue calls for accounts' own work. Ids only; each calls a service."""

from accounts.services import usage


def usage_import_run(import_id: int) -> str:
    """Read one uploaded usage file into last uses (see `accounts.services.usage.usage_import_run`)."""
    return usage.usage_import_run(import_id=import_id)


def usage_imports_sweep() -> dict:
    """Every minute: re-enqueue imports a lost message or a dead worker left behind."""
    return usage.usage_imports_sweep()
