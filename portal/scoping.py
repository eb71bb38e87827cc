"""How portal's admin parts reach scoped administration, which accounts owns (`accounts.scoping`).

portal imports no app, yet every Portal admin (its base classes, `ConfirmAction`, the audit log's
pages) must narrow what it reads and offers to the signed-in user's scope. accounts installs its
implementation here in `AppConfig.ready()`; until it has, every call refuses (`ImproperlyConfigured`)
rather than show everything.
"""

from django.core.exceptions import ImproperlyConfigured

_scoping = None


def scoping_install(implementation) -> None:
    """Called once by accounts: an object with `restrict(queryset, user)`, `is_scoped(user)`,
    `allows(obj, user)`, `refusal(obj, user)` and `scope_description(user)` (the module `accounts.scoping`)."""
    global _scoping
    _scoping = implementation


def _installed():
    if _scoping is None:
        raise ImproperlyConfigured("Scoped administration is not installed: accounts installs it in its ready().")
    return _scoping


def restricted(queryset, user):
    """`accounts.scoping.restrict`: `queryset` narrowed to the rows inside `user`'s scope (all when unscoped)."""
    return _installed().restrict(queryset, user)


def is_scoped(user) -> bool:
    return _installed().is_scoped(user)


def allows(obj, user) -> bool:
    """Whether `obj`, saved or not (a form's instance), is inside `user`'s scope."""
    return _installed().allows(obj, user)


def refusal(obj, user) -> str:
    """The sentence that refuses `obj` to `user` (it names their scope)."""
    return _installed().refusal(obj, user)


def scope_description(user) -> str:
    """ "departments Finance; locations Berlin HQ": what `user`'s scope names, for a sentence."""
    return _installed().scope_description(user)


def form_choices_restrict(form, user) -> None:
    """Narrow every model choice of `form` (a manager, a holder, a delegate ...) to `user`'s scope, so a
    scoped user can neither be offered nor post a row outside it (the field refuses it as an invalid choice)."""
    if not is_scoped(user):
        return
    for field in form.fields.values():
        queryset = getattr(field, "queryset", None)
        if queryset is not None and hasattr(queryset, "model"):
            field.queryset = restricted(queryset, user)
