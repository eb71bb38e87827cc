"""Tasks of checklist runs: registers `Task`, read-only, with retry, skip and mark-done.

A task changes only through the engine (`offboarding.engine`): each of the three is a changelist action
and a button on the task's page (`portal.admin.ConfirmAction`: a reason or note first, then a
report per task of what worked and why anything did not). The list is built in a constant
number of queries.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from offboarding import engine
from offboarding.admin.common import NoteForm, ReasonForm, YesNoFilter, employee_link, pretty_json
from offboarding.models import FINISHED_TASK_STATUSES, Assignee, Task, TaskStatus
from portal.admin import ActionsOnlyRecordMixin, ConfirmAction, PortalModelAdmin, overdue_badge


class TaskOverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"

    def condition(self):
        return ~Q(status__in=FINISHED_TASK_STATUSES) & Q(due_at__lt=timezone.now())


def describe_task(task) -> str:
    return f"{task.title} ({task.run.employee.full_name})"


def _selected_tasks(modeladmin, request, queryset):
    return list(queryset.select_related("run__employee").order_by("due_at", "id"))


def _retry(request, task, data):
    engine.task_retry(task=task, acting_user=request.user, reason=data["reason"])


def _skip(request, task, data):
    engine.task_skip(task=task, acting_user=request.user, reason=data["reason"])


def _complete(request, task, data):
    engine.task_complete(task=task, acting_user=request.user, note=data["note"])


TASK_VERBS = {
    # verb: (action, statuses it applies to); the services decide, the buttons only hint.
    "retry": ("retry_tasks", (TaskStatus.FAILED,)),
    "skip": ("skip_tasks", (TaskStatus.FAILED, TaskStatus.PENDING)),
    "complete": ("complete_tasks", (TaskStatus.PENDING,)),
}


@admin.register(Task)
class TaskAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
    list_display = (
        "title",
        "employee_name",
        "run_kind",
        "status",
        "assignee_type",
        "assignee",
        "action",
        "attempts",
        "due_at",
        "overdue",
        "error",
    )
    list_select_related = ("run__employee", "assignee")
    list_filter = ("status", TaskOverdueFilter, "assignee_type", "run__kind", "action", "due_at")
    search_fields = (
        "title",
        "key",
        "action",
        "run__employee__employee_number",
        "run__employee__first_name",
        "run__employee__last_name",
        "run__employee__work_email",
    )
    ordering = ("due_at", "id")
    fields = (
        ("run_link", "employee_name"),
        ("title", "key"),
        ("status", "overdue"),
        ("assignee_type", "assignee"),
        ("action", "params_display"),
        "instructions",
        "knowledge_url",
        "dependencies",
        ("due_at", "not_before"),
        ("attempts", "max_attempts"),
        ("queued_at", "started_at"),
        ("last_error_display", "failure_alerted_at"),
        "result_display",
        ("completed_at", "completed_by"),
        "note",
        "last_reminded_at",
    )
    actions = ["retry_tasks", "skip_tasks", "complete_tasks"]

    def get_base_queryset(self, request):
        return super().get_base_queryset(request).select_related("run__employee", "assignee", "completed_by")

    # Columns and fields

    @admin.display(description="employee", ordering="run__employee__last_name")
    def employee_name(self, obj):
        return employee_link(obj.run.employee)

    @admin.display(description="checklist", ordering="run__kind")
    def run_kind(self, obj):
        return obj.run.get_kind_display()

    @admin.display(description="run")
    def run_link(self, obj):
        url = reverse("admin:offboarding_checklistrun_change", args=[obj.run_id])
        return format_html('<a href="{}">{}</a>', url, obj.run)

    @admin.display(description="overdue")
    def overdue(self, obj):
        return overdue_badge(obj.is_overdue())

    @admin.display(description="last error")
    def error(self, obj):
        if not obj.last_error:
            return "—"
        return obj.last_error if len(obj.last_error) <= 80 else f"{obj.last_error[:77]}..."

    @admin.display(description="last error")
    def last_error_display(self, obj):
        return format_html("<pre>{}</pre>", obj.last_error) if obj.last_error else "—"

    @admin.display(description="parameters")
    def params_display(self, obj):
        return pretty_json(obj.params)

    @admin.display(description="result")
    def result_display(self, obj):
        return pretty_json(obj.result)

    @admin.display(description="waits for")
    def dependencies(self, obj):
        deps = list(obj.depends_on.order_by("due_at", "id"))
        if not deps:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            (
                (reverse("admin:offboarding_task_change", args=[d.pk]), d.title, d.get_status_display().lower())
                for d in deps
            ),
        )

    # Retry, skip, mark done: changelist actions and buttons on a task's page.

    retry_tasks = ConfirmAction(
        form_class=ReasonForm,
        apply=_retry,
        description="Retry selected failed tasks",
        submit_label="Retry",
        done_message="Sent back to the queue",
        select=_selected_tasks,
        describe=describe_task,
    )
    skip_tasks = ConfirmAction(
        form_class=ReasonForm,
        apply=_skip,
        description="Skip selected tasks",
        submit_label="Skip",
        done_message="Skipped",
        select=_selected_tasks,
        describe=describe_task,
    )
    complete_tasks = ConfirmAction(
        form_class=NoteForm,
        apply=_complete,
        description="Mark selected manual tasks done",
        submit_label="Mark done",
        done_message="Marked done",
        select=_selected_tasks,
        describe=describe_task,
    )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(
                f"<path:object_id>/{verb}/",
                self.admin_site.admin_view(self.task_verb_view),
                {"verb": verb},
                name="{}_{}_{}".format(*info, verb),
            )
            for verb in TASK_VERBS
        ]
        return custom + super().get_urls()

    def task_verb_view(self, request, object_id, verb):
        """One task's retry / skip / mark-done page (the buttons on its change page)."""
        task = self.get_object(request, unquote(object_id))
        if task is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        change_url = reverse("admin:offboarding_task_change", args=[task.pk])
        action = getattr(type(self), TASK_VERBS[verb][0])
        response = action.run(self, request, [task], back_url=change_url)
        return response or HttpResponseRedirect(change_url)

    def task_verbs_for(self, request, task) -> list[tuple[str, str]]:
        """The buttons a task's page offers this user: (url, label)."""
        if not self.has_change_permission(request, task):
            return []
        verbs = []
        for verb, (action, statuses) in TASK_VERBS.items():
            if task.status not in statuses:
                continue
            if verb == "complete" and task.assignee_type == Assignee.SYSTEM:
                continue
            label = getattr(type(self), action).submit_label
            verbs.append((reverse(f"admin:offboarding_task_{verb}", args=[task.pk]), label))
        return verbs

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "task_verbs": self.task_verbs_for(request, task) if task else []}
        return super().change_view(request, object_id, form_url, extra_context)
