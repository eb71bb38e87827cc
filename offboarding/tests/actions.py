"""Throwaway actions registered for engine tests, and what they record.

`test_count` counts its calls, `test_flaky` fails as often as `failures_left` says for a task
key's last part, `test_handoff` hands the task to a person (its completion is recorded in
`manual_completions`), `test_bad_result` returns something else than a dict. The
offboarding conftest registers them and clears what they recorded before every test.
"""

from offboarding.actions import Handoff, register, registry
from offboarding.models import Assignee

calls: list[int] = []
# task key suffix -> how many more times the "test_flaky" action fails for it
failures_left: dict[str, int] = {}
manual_completions: list[tuple[int, object]] = []


def _flaky(task):
    name = task.key.split(":")[-1]
    calls.append(task.pk)
    if failures_left.get(name, 0) != 0:
        failures_left[name] -= 1
        raise ConnectionError(f"target unavailable for {name}")
    return {"ok": True}


def _hand_off(task):
    calls.append(task.pk)
    return Handoff(instructions="Remove the account by hand.", assignee_type=task.params.get("to", Assignee.IT))


def _confirm(task, acting_user):
    manual_completions.append((task.pk, acting_user))


TEST_ACTIONS = {
    "test_count": ("Count calls (test)", lambda task: calls.append(task.pk) or {"n": len(calls)}, None),
    "test_flaky": ("Fail as told, then succeed (test)", _flaky, None),
    "test_handoff": ("Hand off to a person (test)", _hand_off, _confirm),
    "test_bad_result": ("Return a non-dict (test)", lambda task: "oops", None),
}


def register_test_actions() -> None:
    for name, (label, func, on_manual_complete) in TEST_ACTIONS.items():
        if name not in registry:
            register(name, label, on_manual_complete=on_manual_complete)(func)


def reset_test_actions() -> None:
    calls.clear()
    failures_left.clear()
    manual_completions.clear()
