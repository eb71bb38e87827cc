"""Admin for the lifecycle engine: checklist templates, runs, tasks and hardware returns.

- IT edits checklist templates with their tasks inline. A save that would leave the
  template unable to run (a dependency cycle, an unknown action, a dependency on another
  checklist's task, a dependency on a task being deleted) is refused with the reason, and
  nothing of it is saved.
- Runs, tasks and hardware returns are written only by `offboarding.services`: their pages
  are read-only. IT watches runs (progress, failures, overdue tasks, figures) and unblocks
  tasks with actions that call the services: retry or skip a task (with a reason, kept in
  history), mark a manual task done, cancel a run. Each action asks for its reason on an
  intermediate page and reports, per task, what worked and why anything did not.
- Lists are built in a constant number of queries (annotations, `list_select_related`).
"""

import datetime
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import EmploymentType
from assets import admin as assets_admin
from assets.models import HardwareAsset
from offboarding import change_requests, flows, returns, selectors, services
from offboarding.actions import action_choices, registry
from offboarding.models import (
    FINISHED_TASK_STATUSES,
    Assignee,
    ChangeRequest,
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    HardwareReturn,
    ReturnCondition,
    ReturnStatus,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from portal.admin import PortalModelAdmin, ReadOnlyInline, report_action_results

ACTION_FORM_TEMPLATE = "admin/portal/action_form.html"


def format_duration(value: datetime.timedelta | None) -> str:
    """A duration for people: "3 d 4 h", "2 h 5 min", "12 min", "under a minute"; "—" when unknown."""
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def employee_link(employee):
    url = reverse("admin:accounts_employee_change", args=[employee.pk])
    return format_html('<a href="{}">{}</a>', url, employee.full_name)


def pretty_json(value) -> str:
    if not value:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class ServiceOnlyMixin:
    """For records only services write: every field read-only, no add, no delete, no save button.

    The change permission still matters: it is what the actions (retry, skip ...) require.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f for entry in self.get_fields(request, obj) for f in (entry if isinstance(entry, tuple) else (entry,))]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("This record changes only through its actions.")
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)


# --- Checklist templates ------------------------------------------------------------------


class ChecklistTemplateForm(forms.ModelForm):
    employment_types = forms.MultipleChoiceField(
        choices=EmploymentType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every employment type.",
    )

    class Meta:
        model = ChecklistTemplate
        fields = ("name", "kind", "description", "is_active", "roles", "departments", "locations", "employment_types")

    def clean_employment_types(self):
        return list(self.cleaned_data["employment_types"])


class DependencyChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.key} — {obj.title}"


class TaskTemplateForm(forms.ModelForm):
    action = forms.ChoiceField(choices=action_choices, required=False, help_text="Empty for a task a person does.")
    depends_on = DependencyChoiceField(
        queryset=TaskTemplate.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Steps of this checklist that must be done (or skipped) first. New steps appear once saved.",
    )

    class Meta:
        model = TaskTemplate
        fields = (
            "position",
            "key",
            "title",
            "assignee",
            "action",
            "due_offset_days",
            "max_attempts",
            "instructions",
            "knowledge_url",
            "params",
            "depends_on",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.action
        if current and current not in registry:
            # Show an action that no longer exists instead of silently blanking it on the next save.
            self.fields["action"].choices = [*action_choices(), (current, f"⚠ unknown action “{current}”")]

    def clean_action(self):
        action = self.cleaned_data["action"]
        if action and action not in registry:
            raise ValidationError(f"Unknown action {action!r}; choose one from the list.")
        return action


class TaskTemplateFormSet(BaseInlineFormSet):
    """The template's tasks; checks the dependency graph they would form before anything is saved."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        siblings = TaskTemplate.objects.none()
        if self.instance.pk:
            siblings = TaskTemplate.objects.filter(checklist=self.instance).order_by("position", "id")
            if form.instance.pk:
                siblings = siblings.exclude(pk=form.instance.pk)
        form.fields["depends_on"].queryset = siblings

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        edges, names, deleted = {}, {}, {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data:
                continue
            pk = form.instance.pk
            if self.can_delete and self._should_delete_form(form):
                if pk:
                    deleted[pk] = form.instance.key
                continue
            node = pk or f"new-{id(form)}"
            names[node] = data.get("key") or form.instance.key
            edges[node] = [dep.pk for dep in data.get("depends_on") or ()]
        for node, deps in edges.items():
            gone = [deleted[d] for d in deps if d in deleted]
            if gone:
                raise ValidationError(
                    f"Task {names[node]!r} depends on {', '.join(map(repr, gone))}, which you are deleting. "
                    "Remove the dependency first."
                )
        cycle = services.dependency_cycle(edges, names)
        if cycle:
            raise ValidationError(f"The tasks depend on each other in a cycle: {' → '.join(cycle)}. Break the cycle.")


class TaskTemplateInline(admin.StackedInline):
    model = TaskTemplate
    form = TaskTemplateForm
    formset = TaskTemplateFormSet
    extra = 0
    ordering = ("position", "id")
    fieldsets = (
        (None, {"fields": (("position", "key"), "title", ("assignee", "action"), ("due_offset_days", "max_attempts"))}),
        ("Details", {"fields": ("instructions", "knowledge_url", "params", "depends_on")}),
    )


class TemplateRejected(Exception):
    """A saved template failed `services.template_validate`; the save is rolled back."""


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(PortalModelAdmin):
    form = ChecklistTemplateForm
    list_display = ("name", "kind", "is_active", "task_count", "scope")
    list_filter = ("kind", "is_active")
    search_fields = ("name", "description")
    autocomplete_fields = ("roles", "departments", "locations")
    ordering = ("kind", "name")
    fieldsets = (
        (None, {"fields": ("name", "kind", "description", "is_active")}),
        (
            "Applies to (empty: everyone)",
            {"fields": ("roles", "departments", "locations", "employment_types")},
        ),
    )
    inlines = [TaskTemplateInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(task_count=Count("task_templates"))
            .prefetch_related("roles", "departments", "locations")
        )

    @admin.display(description="tasks", ordering="task_count")
    def task_count(self, obj):
        return obj.task_count

    @admin.display(description="applies to")
    def scope(self, obj):
        labels = dict(EmploymentType.choices)
        parts = [
            ", ".join(str(item) for item in items)
            for items in (obj.roles.all(), obj.departments.all(), obj.locations.all())
            if items
        ]
        if obj.employment_types:
            parts.append(", ".join(labels.get(t, t) for t in obj.employment_types))
        return " · ".join(parts) or "everyone"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:
            services.template_validate(template=form.instance)
        except ValidationError as exc:
            raise TemplateRejected(" ".join(exc.messages)) from exc

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The admin saves inside a transaction: raising out of it rolls the whole save back.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except TemplateRejected as exc:
            self.message_user(request, f"Nothing was saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(TaskTemplate)
class TaskTemplateAdmin(ServiceOnlyMixin, PortalModelAdmin):
    """A flat, read-only list of every checklist step; steps are edited on their checklist's page."""

    list_display = ("title", "key", "checklist", "assignee", "action", "due_offset_days")
    list_select_related = ("checklist",)
    list_filter = ("checklist__kind", "assignee", "checklist")
    search_fields = ("title", "key", "action", "checklist__name")
    ordering = ("checklist__kind", "checklist__name", "position", "id")
    fields = (
        "checklist",
        ("position", "key"),
        "title",
        ("assignee", "action"),
        ("due_offset_days", "max_attempts"),
        "instructions",
        "knowledge_url",
        "params",
        "depends_on",
    )


# --- Runs -----------------------------------------------------------------------------------


class TaskInline(ReadOnlyInline):
    """The run's tasks with their state; open a task to retry, skip or complete it."""

    model = Task
    fk_name = "run"
    fields = ("title", "status", "assignee_type", "assignee", "action", "attempts", "due_at", "overdue", "error")
    ordering = ("due_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("assignee")

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj):
        return obj.is_overdue()

    @admin.display(description="last error")
    def error(self, obj):
        if not obj.last_error:
            return "—"
        return obj.last_error if len(obj.last_error) <= 120 else f"{obj.last_error[:117]}..."


class YesNoFilter(admin.SimpleListFilter):
    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        condition = self.condition()
        if self.value() == "yes":
            return queryset.filter(condition)
        if self.value() == "no":
            return queryset.exclude(condition)
        return queryset


class RunFailedFilter(YesNoFilter):
    title = "has failed tasks"
    parameter_name = "failed"

    def condition(self):
        return Exists(Task.objects.filter(run=OuterRef("pk"), status=TaskStatus.FAILED))


class RunOverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"

    def condition(self):
        return Q(pk__in=selectors.runs_overdue().values("pk"))


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why; kept in the history with your name.",
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What was done (optional); kept in the history with your name.",
    )


class ServiceActionMixin:
    """Admin actions that ask for a reason or note first, then call a service once per object."""

    def _with_form(
        self, request, objects, *, form_class, title, submit_label, apply, describe, action=None, back_url=None
    ):
        """Show the form; once posted valid, apply to each object and report per object.

        Returns a response to show, or None when done (a changelist action then redirects to
        the list). `action` is the changelist action's name; without it, the page is a single
        object's and posts to itself.
        """
        posted = "apply" in request.POST
        form = form_class(request.POST if posted else None)
        if posted and form.is_valid():
            done, failed = [], []
            for obj in objects:
                try:
                    apply(obj, form.cleaned_data)
                except ValidationError as exc:
                    failed.append((describe(obj), " ".join(exc.messages)))
                else:
                    done.append(describe(obj))
            report_action_results(self, request, done_message=title, done=done, failed=failed)
            return None
        noun = self.opts.verbose_name if len(objects) == 1 else self.opts.verbose_name_plural
        context = {
            **self.admin_site.each_context(request),
            "title": f"{submit_label}: {len(objects)} {noun}",
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            "objects": [describe(obj) for obj in objects],
            "object_ids": [obj.pk for obj in objects],
            "action": action,
            "submit_label": submit_label,
            "back_url": back_url or reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, ACTION_FORM_TEMPLATE, context)


@admin.register(ChecklistRun)
class ChecklistRunAdmin(ServiceActionMixin, ServiceOnlyMixin, PortalModelAdmin):
    list_display = (
        "__str__",
        "employee_name",
        "kind",
        "event_date",
        "status",
        "progress",
        "failed",
        "overdue",
        "figure",
        "created_at",
    )
    list_select_related = ("employee",)
    list_filter = ("kind", "status", RunFailedFilter, RunOverdueFilter, "event_date")
    search_fields = (
        "employee__employee_number",
        "employee__first_name",
        "employee__last_name",
        "employee__work_email",
    )
    ordering = ("-created_at", "-id")
    date_hierarchy = "event_date"
    fields = (
        "employee_name",
        ("kind", "status"),
        ("event_date", "effective_at"),
        ("started_by", "created_at", "completed_at"),
        "progress",
        ("time_to_provision_display", "time_to_deprovision_display", "last_revocation_at"),
        "details_display",
    )
    inlines = [TaskInline]
    actions = ["cancel_runs"]

    def get_queryset(self, request):
        return selectors.runs_with_progress().select_related("employee", "started_by")

    @admin.display(description="employee", ordering="employee__last_name")
    def employee_name(self, obj):
        return employee_link(obj.employee)

    @admin.display(description="progress", ordering="finished_tasks")
    def progress(self, obj):
        total, finished = obj.total_tasks, obj.finished_tasks
        percent = round(100 * finished / total) if total else 100
        return format_html(
            '<div title="{}% done or skipped" style="display:flex;align-items:center;gap:.5em">'
            '<div style="width:80px;height:8px;background:var(--hairline-color,#ddd);border-radius:4px">'
            '<div style="width:{}%;height:8px;background:var(--primary,#79aec8);border-radius:4px"></div></div>'
            "<span>{}/{}</span></div>",
            percent,
            percent,
            finished,
            total,
        )

    @admin.display(description="failed", ordering="failed_tasks")
    def failed(self, obj):
        if not obj.failed_tasks:
            return "0"
        url = reverse("admin:offboarding_task_changelist")
        return format_html(
            '<a href="{}?run__id__exact={}&amp;status__exact=failed">{}</a>', url, obj.pk, obj.failed_tasks
        )

    @admin.display(description="overdue", boolean=True, ordering="overdue_tasks")
    def overdue(self, obj):
        return obj.overdue_tasks > 0

    @admin.display(description="time to provision / deprovision")
    def figure(self, obj):
        if obj.kind == ChecklistKind.JOIN:
            return format_duration(obj.time_to_provision)
        if obj.kind == ChecklistKind.LEAVE:
            return format_duration(obj.time_to_deprovision)
        return "—"

    @admin.display(description="time to provision")
    def time_to_provision_display(self, obj):
        return format_duration(obj.time_to_provision)

    @admin.display(description="time to deprovision")
    def time_to_deprovision_display(self, obj):
        return format_duration(obj.time_to_deprovision)

    @admin.display(description="details")
    def details_display(self, obj):
        return pretty_json(obj.details)

    @admin.action(permissions=["change"], description="Cancel selected runs (skips their open tasks)")
    def cancel_runs(self, request, queryset):
        runs = list(queryset.select_related("employee").filter(status=RunStatus.RUNNING).order_by("pk"))
        others = queryset.exclude(status=RunStatus.RUNNING).select_related("employee")
        for run in others:
            self.message_user(request, f"{run}: already {run.get_status_display().lower()}.", messages.ERROR)
        if not runs:
            return None
        return self._with_form(
            request,
            runs,
            form_class=ReasonForm,
            title="Cancelled",
            submit_label="Cancel runs",
            action="cancel_runs",
            describe=str,
            apply=lambda run, data: services.run_cancel(run=run, acting_user=request.user, reason=data["reason"]),
        )


# --- Tasks ---------------------------------------------------------------------------------


class TaskOverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"

    def condition(self):
        return ~Q(status__in=FINISHED_TASK_STATUSES) & Q(due_at__lt=timezone.now())


TASK_VERBS = {
    # verb: (button label, statuses it applies to); the services decide, the buttons only hint.
    "retry": ("Retry", (TaskStatus.FAILED,)),
    "skip": ("Skip", (TaskStatus.FAILED, TaskStatus.PENDING)),
    "complete": ("Mark done", (TaskStatus.PENDING,)),
}


@admin.register(Task)
class TaskAdmin(ServiceActionMixin, ServiceOnlyMixin, PortalModelAdmin):
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
        "last_error_display",
        "result_display",
        ("completed_at", "completed_by"),
        "note",
        "last_reminded_at",
    )
    actions = ["retry_tasks", "skip_tasks", "complete_tasks"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("run__employee", "assignee", "completed_by")

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

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj):
        return obj.is_overdue()

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

    @staticmethod
    def describe(task) -> str:
        return f"{task.title} ({task.run.employee.full_name})"

    def _apply(self, verb, request):
        if verb == "retry":
            return lambda task, data: services.task_retry(task=task, acting_user=request.user, reason=data["reason"])
        if verb == "skip":
            return lambda task, data: services.task_skip(task=task, acting_user=request.user, reason=data["reason"])
        return lambda task, data: services.task_complete(task=task, acting_user=request.user, note=data["note"])

    def _task_action(self, request, tasks, verb, *, action=None, back_url=None):
        label = TASK_VERBS[verb][0]
        return self._with_form(
            request,
            tasks,
            form_class=NoteForm if verb == "complete" else ReasonForm,
            title={"retry": "Sent back to the queue", "skip": "Skipped", "complete": "Marked done"}[verb],
            submit_label=label,
            apply=self._apply(verb, request),
            describe=self.describe,
            action=action,
            back_url=back_url,
        )

    def _selected(self, queryset):
        return list(queryset.select_related("run__employee").order_by("due_at", "id"))

    @admin.action(permissions=["change"], description="Retry selected failed tasks")
    def retry_tasks(self, request, queryset):
        return self._task_action(request, self._selected(queryset), "retry", action="retry_tasks")

    @admin.action(permissions=["change"], description="Skip selected tasks")
    def skip_tasks(self, request, queryset):
        return self._task_action(request, self._selected(queryset), "skip", action="skip_tasks")

    @admin.action(permissions=["change"], description="Mark selected manual tasks done")
    def complete_tasks(self, request, queryset):
        return self._task_action(request, self._selected(queryset), "complete", action="complete_tasks")

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
        response = self._task_action(request, [task], verb, back_url=change_url)
        return response or HttpResponseRedirect(change_url)

    def task_verbs_for(self, request, task) -> list[tuple[str, str]]:
        """The buttons a task's page offers this user: (url, label)."""
        if not self.has_change_permission(request, task):
            return []
        verbs = []
        for verb, (label, statuses) in TASK_VERBS.items():
            if task.status not in statuses:
                continue
            if verb == "complete" and task.assignee_type == Assignee.SYSTEM:
                continue
            verbs.append((reverse(f"admin:offboarding_task_{verb}", args=[task.pk]), label))
        return verbs

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "task_verbs": self.task_verbs_for(request, task) if task else []}
        return super().change_view(request, object_id, form_url, extra_context)


# --- Hardware returns ---------------------------------------------------------------------------


class ReturnOverdueFilter(YesNoFilter):
    title = "overdue"
    parameter_name = "overdue"

    def condition(self):
        return Q(status=ReturnStatus.OPEN, due_date__lt=timezone.localdate())


class ReceiveReturnForm(forms.Form):
    condition = forms.ChoiceField(
        choices=ReturnCondition.choices,
        initial=ReturnCondition.GOOD,
        help_text="Good: back in stock. Damaged or missing parts: into repair.",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


@admin.register(HardwareReturn)
class HardwareReturnAdmin(ServiceActionMixin, ServiceOnlyMixin, PortalModelAdmin):
    list_display = (
        "asset",
        "employee_name",
        "status",
        "due_date",
        "overdue",
        "method",
        "tracking_number",
        "shipped_at",
        "received_at",
        "condition",
    )
    list_select_related = ("asset__model", "employee")
    list_filter = ("status", ReturnOverdueFilter, "method", "condition", "due_date")
    search_fields = (
        "asset__asset_tag",
        "asset__serial",
        "tracking_number",
        "employee__employee_number",
        "employee__last_name",
        "employee__work_email",
    )
    ordering = ("due_date", "id")
    date_hierarchy = "due_date"
    actions = ["receive_returns"]
    fields = (
        ("asset", "employee_name", "run"),
        ("status", "due_date", "overdue"),
        ("method", "drop_off_location", "drop_off_date"),
        ("carrier", "tracking_number", "shipped_at"),
        ("received_at", "received_by", "condition"),
        ("reminders_sent", "last_reminded_at", "created_at"),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("asset__model", "employee", "run__employee", "drop_off_location", "received_by")
        )

    @admin.display(description="employee", ordering="employee__last_name")
    def employee_name(self, obj):
        return employee_link(obj.employee)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, obj):
        return obj.status == ReturnStatus.OPEN and obj.due_date < timezone.localdate()

    @admin.action(permissions=["change"], description="Mark selected returns received (condition)")
    def receive_returns(self, request, queryset):
        items = list(queryset.select_related("asset__model", "employee").order_by("pk"))
        return self._with_form(
            request,
            items,
            form_class=ReceiveReturnForm,
            title="Received",
            submit_label="Mark received",
            action="receive_returns",
            describe=str,
            apply=lambda item, data: flows.hardware_return_receive(
                item=item, acting_user=request.user, condition=data["condition"], note=data["note"]
            ),
        )


# --- Managers' move and leave requests ----------------------------------------------------------


class DecisionNoteForm(forms.Form):
    note = forms.CharField(
        label="Reason for the manager", widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True
    )


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(
        label="Start the checklist for each request (a move applies the change now; a leave schedules the cut-off)",
        required=True,
    )


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ServiceActionMixin, ServiceOnlyMixin, PortalModelAdmin):
    """A manager's request to move or off-board a report. IT confirms it (the move or leave run starts,
    through `offboarding.change_requests`) or declines it with a reason the manager reads."""

    list_display = (
        "__str__",
        "kind",
        "status",
        "effective_date",
        "requested_by",
        "proposed",
        "created_at",
        "decided_by",
    )
    list_select_related = ("employee", "requested_by", "new_role", "new_department", "new_manager", "decided_by")
    list_filter = ("status", "kind", "effective_date")
    search_fields = ("employee__employee_number", "employee__last_name", "requested_by__last_name")
    ordering = ("-created_at", "-id")
    actions = ["confirm_requests", "decline_requests"]
    fields = (
        ("employee", "kind", "status"),
        ("requested_by", "effective_date"),
        ("new_role", "new_department", "new_manager"),
        "reason",
        ("decided_by", "decided_at", "run"),
        "decision_note",
        "created_at",
    )

    @admin.display(description="change")
    def proposed(self, obj):
        if obj.kind == "leave":
            return f"Last day {obj.effective_date:%d %b %Y}"
        parts = []
        if obj.new_role_id:
            parts.append(f"role → {obj.new_role}")
        if obj.new_department_id:
            parts.append(f"department → {obj.new_department}")
        if obj.new_manager_id:
            parts.append(f"manager → {obj.new_manager.full_name}")
        return ", ".join(parts) or "—"

    @admin.action(permissions=["change"], description="Confirm selected requests (start their checklists)")
    def confirm_requests(self, request, queryset):
        return self._with_form(
            request,
            list(queryset.select_related("employee").order_by("pk")),
            form_class=ConfirmForm,
            title="Confirmed",
            submit_label="Confirm",
            action="confirm_requests",
            describe=str,
            apply=lambda item, data: change_requests.change_request_confirm(request=item, acting_user=request.user),
        )

    @admin.action(permissions=["change"], description="Decline selected requests (with a reason)")
    def decline_requests(self, request, queryset):
        return self._with_form(
            request,
            list(queryset.select_related("employee").order_by("pk")),
            form_class=DecisionNoteForm,
            title="Declined",
            submit_label="Decline",
            action="decline_requests",
            describe=str,
            apply=lambda item, data: change_requests.change_request_decline(
                request=item, note=data["note"], acting_user=request.user
            ),
        )


# --- Asking anyone to return a device ---------------------------------------------------------


class AskReturnForm(forms.Form):
    due_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Leave empty for the default return period.",
    )


class HardwareAssetAdmin(assets_admin.HardwareAssetAdmin):
    """The hardware admin with one more action: ask the holder to return the asset (their self-service
    return checklist, an email, the asset pending return)."""

    actions = [*assets_admin.HardwareAssetAdmin.actions, "ask_to_return"]

    @admin.action(permissions=["change"], description="Ask the holder to return selected assets")
    def ask_to_return(self, request, queryset):
        def apply(asset, data):
            returns.hardware_return_request(asset=asset, acting_user=request.user, due_date=data["due_date"])

        return self._action_with_form(
            request,
            queryset,
            action="ask_to_return",
            form_class=AskReturnForm,
            title="Return asked",
            submit_label="Ask to return",
            apply=apply,
        )


admin.site.unregister(HardwareAsset)
admin.site.register(HardwareAsset, HardwareAssetAdmin)


# Lifecycle actions on the Employee page live in their own module.
from offboarding import employee_admin  # noqa: E402,F401
