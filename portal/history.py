"""Attribute simple-history rows to the acting user, also where no request exists (tasks, commands)."""

from django.db import models


def set_history_user(instance: models.Model, acting_user) -> models.Model:
    """Mark `instance` so the history row written by its next save names `acting_user`."""
    instance._history_user = acting_user if getattr(acting_user, "pk", None) else None
    return instance
