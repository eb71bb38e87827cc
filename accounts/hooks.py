"""Hooks accounts declares so that a higher app can act on what happens here.

accounts may not import the apps above it (assets, offboarding). Where one of them must follow up
on an accounts event, accounts declares a `Hook` here and the higher app connects its own queue
task to it in its `AppConfig.ready()`. Firing a hook enqueues each receiver on commit, ids only.
"""

from django.core.exceptions import ImproperlyConfigured

from portal.queue import enqueue_on_commit


class Hook:
    """A named event with queue tasks (dotted paths) as receivers, enqueued once the transaction commits.

    A hook nobody connected refuses to fire (`ImproperlyConfigured`): the follow-up it stands for
    would otherwise be dropped without a trace, and the caller's transaction rolls back instead.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[str] = []

    def __repr__(self) -> str:
        return f"Hook({self.name!r})"

    @property
    def receivers(self) -> tuple[str, ...]:
        return tuple(self._receivers)

    def connect(self, func_path: str) -> None:
        """Enqueue the task `func_path` (a dotted path, as `portal.queue` takes it) each time the hook fires.

        Connecting the same task again is a no-op, so a repeated `ready()` does not enqueue it twice.
        """
        if not isinstance(func_path, str) or "." not in func_path:
            raise TypeError(f"Connect a queue task to the {self.name!r} hook by its dotted path, not {func_path!r}.")
        if func_path not in self._receivers:
            self._receivers.append(func_path)

    def fire(self, *ids: int | str) -> None:
        """Enqueue every receiver with `ids` after the current transaction commits (nothing on rollback)."""
        if not self._receivers:
            raise ImproperlyConfigured(
                f"Nothing is connected to the {self.name!r} hook: the app that handles it must connect "
                "its task in its AppConfig.ready()."
            )
        for func_path in self._receivers:
            enqueue_on_commit(func_path, *ids)


# A request's final approval (or an approval needing nobody): the lifecycle provisions its access.
access_request_approved = Hook("access_request_approved")
# A reviewer revoked an item of an access review or changed its level: the lifecycle applies it as a task.
access_review_decided = Hook("access_review_decided")


class SyncHook:
    """A named event with one receiver, a function the higher app sets, called at once in the caller's transaction.

    For follow-ups that must commit or roll back with the change that causes them (a person pushed by an
    identity provider and their join run: both or neither). The receiver takes keyword arguments and
    returns what the caller reports (e.g. the run it started). Unconnected, it refuses to fire
    (`ImproperlyConfigured`), so the caller's transaction rolls back rather than drop the follow-up.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._receiver = None

    def __repr__(self) -> str:
        return f"SyncHook({self.name!r})"

    @property
    def receiver(self):
        return self._receiver

    def connect(self, func) -> None:
        """Call `func(**kwargs)` each time the hook fires. Connecting the same function again is a no-op."""
        if not callable(func):
            raise TypeError(f"Connect a function to the {self.name!r} hook, not {func!r}.")
        if self._receiver is not None and self._receiver is not func:
            raise ImproperlyConfigured(f"The {self.name!r} hook already has a receiver ({self._receiver!r}).")
        self._receiver = func

    def fire(self, **kwargs):
        """Call the receiver now, inside the current transaction, and return its result."""
        if self._receiver is None:
            raise ImproperlyConfigured(
                f"Nothing is connected to the {self.name!r} hook: the app that handles it must connect "
                "its function in its AppConfig.ready()."
            )
        return self._receiver(**kwargs)


# Identity providers (SCIM): the lifecycle of a person they push, started in the same transaction.
# employee, acting_user → the join run.
employee_joined = SyncHook("employee_joined")
# employee, changes ({"role"|"department"|"manager": new value}), acting_user → the move run.
employee_moved = SyncHook("employee_moved")
# employee, acting_user, reason → the leave run, with an immediate cut-off.
employee_left_now = SyncHook("employee_left_now")

# An HR import wrote its rows: the lifecycle starts the join runs of `joiners` (new employees, not
# terminated) and applies `moves` ([(employee, {field: new value})]) as move runs, in the import's
# transaction; `progress(done)` is called as it goes.
employees_imported = SyncHook("employees_imported")
