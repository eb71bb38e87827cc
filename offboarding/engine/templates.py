"""Checklist templates as the engine reads them: which apply to a person, and whether they can run.

A template's saved tasks must form no dependency cycle, depend only on tasks of the same
checklist, and each pass its own `full_clean()`; the template admin refuses a save otherwise.
"""

from django.core.exceptions import ValidationError

from accounts.models import Employee
from offboarding.models import (
    ChecklistTemplate,
)


def templates_for(*, employee: Employee, kind: str) -> list[ChecklistTemplate]:
    """Active templates of `kind` whose scopes (empty = all) include the employee."""
    candidates = ChecklistTemplate.objects.filter(kind=kind, is_active=True).prefetch_related(
        "roles", "departments", "locations"
    )
    chosen = []
    for template in candidates:
        scopes = (
            (template.roles.all(), employee.role_id),
            (template.departments.all(), employee.department_id),
            (template.locations.all(), employee.location_id),
        )
        if any(items and value not in {item.pk for item in items} for items, value in scopes):
            continue
        if template.employment_types and employee.employment_type not in template.employment_types:
            continue
        chosen.append(template)
    return chosen


def dependency_cycle(edges: dict, names: dict | None = None) -> list[str] | None:
    """A cycle in the graph `{node: [nodes it depends on]}`, as names from first to itself, or None."""
    names = names or {}
    state: dict = {}  # 1: on the current path, 2: explored
    for start in edges:
        if start in state:
            continue
        # Iterative depth-first search (a long chain of steps must not hit the recursion limit).
        path = [start]
        iterators = [iter(edges.get(start, ()))]
        state[start] = 1
        while iterators:
            node = next(iterators[-1], None)
            if node is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if state.get(node) == 1:
                cycle = path[path.index(node) :] + [node]
                return [str(names.get(n, n)) for n in cycle]
            if node not in state:
                state[node] = 1
                path.append(node)
                iterators.append(iter(edges.get(node, ())))
    return None


def template_dependency_cycle(template: ChecklistTemplate) -> list[str] | None:
    """The keys of a dependency cycle among the template's saved tasks, or None."""
    edges, names = {}, {}
    for task in template.task_templates.prefetch_related("depends_on"):
        names[task.pk] = task.key
        edges[task.pk] = [dep.pk for dep in task.depends_on.all()]
    return dependency_cycle(edges, names)


def template_validate(*, template: ChecklistTemplate) -> None:
    """Raise ValidationError naming the problem if the template's saved tasks cannot run.

    Problems: a dependency cycle, a dependency on another checklist's task, and anything a
    task's own `full_clean()` refuses (an unknown action, a system task without action ...).
    """
    cycle = template_dependency_cycle(template)
    if cycle:
        raise ValidationError(f"The tasks depend on each other in a cycle: {' → '.join(cycle)}.")
    for task in template.task_templates.prefetch_related("depends_on"):
        foreign = [d.key for d in task.depends_on.all() if d.checklist_id != template.pk]
        if foreign:
            raise ValidationError(f"Task {task.key!r} depends on tasks of another checklist: {', '.join(foreign)}.")
        try:
            task.full_clean()
        except ValidationError as exc:
            raise ValidationError(f"Task {task.key!r}: {' '.join(exc.messages)}") from exc
