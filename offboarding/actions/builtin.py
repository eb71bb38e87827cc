"""Built-in actions with no outside system involved (the connector-backed ones live beside)."""

from offboarding.actions import register


@register("noop", "Do nothing (for tests and benchmarks)")
def noop(task) -> dict:
    return {}
