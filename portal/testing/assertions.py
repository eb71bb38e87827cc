"""Assertions shared by every app's tests."""

import contextlib
from collections.abc import Iterable, Iterator

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

# Django's own bookkeeping that a refused call may legitimately touch (a session, a queue row).
IGNORED_APPS = frozenset({"sessions", "django_q", "admin", "contenttypes"})


def database_snapshot(only: Iterable[type[models.Model]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every concrete model (or of `only`), as tuples ordered by primary key.

    History tables and the audit log are models too, so a refused call that wrote history or an
    audit event shows up as a difference.
    """
    chosen = (
        list(only)
        if only is not None
        else [
            model
            for model in apps.get_models()
            if model._meta.app_label not in IGNORED_APPS and not model._meta.proxy and model._meta.managed
        ]
    )
    return {model._meta.label: list(model._base_manager.order_by("pk").values_list()) for model in chosen}


@contextlib.contextmanager
def refused_and_nothing_written(
    exception: type[BaseException] | tuple[type[BaseException], ...],
    *,
    match: str | None = None,
    only: Iterable[type[models.Model]] | None = None,
) -> Iterator[pytest.ExceptionInfo]:
    """Expect the block to raise `exception` (its message matching `match`) and to leave every row as it was.

    Use it for every bad path of a service: the refusal must say why, and write nothing partial.
    """
    before = database_snapshot(only)
    with pytest.raises(exception, match=match) as info:
        yield info
    after = database_snapshot(only)
    changed = sorted(label for label in before.keys() | after.keys() if before.get(label) != after.get(label))
    assert not changed, f"The refused call still wrote to: {', '.join(changed)}."


@contextlib.contextmanager
def nothing_written(only: Iterable[type[models.Model]] | None = None) -> Iterator[None]:
    """Assert the block (e.g. a refused HTTP request) leaves every row as it was."""
    before = database_snapshot(only)
    yield
    after = database_snapshot(only)
    changed = sorted(label for label in before.keys() | after.keys() if before.get(label) != after.get(label))
    assert not changed, f"Refused, but still wrote to: {', '.join(changed)}."


def refused(call, /, *args, exception: type[BaseException] = ValidationError, **kwargs) -> str:
    """Call `call(*args, **kwargs)`, which must be refused with `exception` and write nothing; return its message."""
    with refused_and_nothing_written(exception) as info:
        call(*args, **kwargs)
    error = info.value
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
