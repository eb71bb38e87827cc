"""Entry points the queue calls for accounts' own work. They take ids only and call services."""

from accounts.services import hr_import, usage


def usage_import_run(import_id: int) -> str:
    """Read one uploaded usage file into last uses (see `accounts.services.usage.usage_import_run`)."""
    return usage.usage_import_run(import_id=import_id)


def usage_imports_sweep() -> dict:
    """Every minute: re-enqueue imports a lost message or a dead worker left behind."""
    return usage.usage_imports_sweep()


def employee_import_run(import_id: int) -> str:
    """Import a confirmed HR file (see `hr_import.employee_import_run`); a second delivery does nothing."""
    return hr_import.employee_import_run(import_id=import_id).status


def employee_imports_forget_stale() -> int:
    """Every 10 minutes: abandon HR import previews nobody confirmed in time, deleting their cells."""
    return hr_import.employee_imports_forget_stale()


def access_reviews_hourly() -> dict:
    """Every hour: review reminders, due dates (capped), confirmations, closing, recurring launches."""
    from accounts.services import reviews

    return reviews.review_campaigns_hourly()


def access_review_launch(campaign_id: int) -> str:
    """Freeze a launching campaign's items (see `reviews.review_campaign_launch_run`); idempotent, resumable."""
    from accounts.services import reviews

    return reviews.review_campaign_launch_run(campaign_id=campaign_id)
