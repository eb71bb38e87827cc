"""Automated actions that checklist tasks run, by name.

An action is a function `(task) -> dict | Handoff` registered with `@register(name, label)`.
It must be idempotent: it looks at the target's state before acting and uses the task id as
the idempotency key, so a second delivery, or a retry after a crash mid-way, has its effect
once. It raises an exception to fail (the engine retries with backoff; an error whose
`retryable` is False fails the task at once), returns a dict stored as the task's result,
returns `Handoff(...)` when a person must finish the work (a manual connector): the task is
then reassigned to that person and completed by them, or returns `Repeat(at=...)` to run again
later as the same task (a reminder while something is still out), so a run's task count does
not grow with each repetition.

Every module of this package is imported at the bottom (`builtin`, `lifecycle`, any later
one), so that `registry` is complete wherever it is read: the engine, the template admin's
action picker and `TaskTemplate.clean`.
"""

import datetime
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    func: Callable
    # Called when a person completes a task this action handed off (e.g. IT confirms a manual revoke).
    on_manual_complete: Callable | None = None


@dataclass(frozen=True)
class Handoff:
    """The automated part is done; a person (IT by default) must finish it by hand."""

    instructions: str
    assignee_type: str = "it"
    result: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Repeat:
    """Not finished: run this same task again at `at` (never before now), keeping `result`."""

    at: datetime.datetime
    result: dict = field(default_factory=dict)


registry: dict[str, Action] = {}


def register(name: str, label: str, *, on_manual_complete: Callable | None = None):
    def decorator(func: Callable) -> Callable:
        if name in registry:
            raise ValueError(f"Action {name!r} is registered twice.")
        registry[name] = Action(name=name, label=label, func=func, on_manual_complete=on_manual_complete)
        return func

    return decorator


def action_choices() -> list[tuple[str, str]]:
    """Choices for a task's action: none (a person does it), then every registered action by name."""
    return [("", "— none (a person does it) —")] + sorted((a.name, f"{a.label} ({a.name})") for a in registry.values())


def _import_action_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_action_modules()
