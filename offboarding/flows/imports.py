"""The lifecycle of an HR import: join runs for the people it adds, move runs for the people it moves.

Connected to `accounts.hooks.employees_imported` in `OffboardingConfig.ready()`; runs inside the
import's transaction, so a refused run rolls the whole import back with its reason.
"""

from offboarding.flows import joiner, mover


def employees_imported(*, joiners: list, moves: list, acting_user, progress) -> None:
    """Start each joiner's join run and apply each move (`mover.mover_apply`), telling `progress` every 100."""
    pending = 0
    for employee in joiners:
        joiner.joiner_start(employee=employee, acting_user=acting_user)
        pending += 1
        if pending == 100:
            progress(pending)
            pending = 0
    for employee, changes in moves:
        mover.mover_apply(employee=employee, changes=changes, acting_user=acting_user)
        pending += 1
        if pending == 100:
            progress(pending)
            pending = 0
    if pending:
        progress(pending)
