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


class Handler:
    """A hook answered at once, inside the caller's transaction, by the one function a higher app connects.

    For follow-ups that must commit or roll back with the change (an HR import's join and move runs:
    all rows or none). Calling a handler nobody connected raises `ImproperlyConfigured`, so the
    caller's transaction rolls back instead of dropping the follow-up.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._func = None

    def __repr__(self) -> str:
        return f"Handler({self.name!r})"

    def connect(self, func) -> None:
        self._func = func

    def __call__(self, **kwargs):
        if self._func is None:
            raise ImproperlyConfigured(
                f"Nothing is connected to the {self.name!r} handler: the app that handles it must connect it "
                "in its AppConfig.ready()."
            )
        return self._func(**kwargs)


# An HR import wrote its rows: the lifecycle starts the join runs of `joiners` (new employees, not
# terminated) and applies `moves` ([(employee, {field: new value})]) as move runs, in the import's
# transaction; `progress(done)` is called as it goes.
employees_imported = Handler("employees_imported")
