"""Entry points the queue calls. They take ids only and call services."""

from offboarding import services


def task_execute(task_id: int) -> str:
    return services.task_execute(task_id=task_id)


def sweep() -> dict:
    return services.sweep()
