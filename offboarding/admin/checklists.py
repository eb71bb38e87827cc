"""Checklist templates (edited here) and their runs (watched here): registers `ChecklistTemplate`,
`TaskTemplate` and `ChecklistRun`.

- IT edits checklist templates with their tasks inline. A save that would leave the
  template unable to run (a dependency cycle, an unknown action, a dependency on another
  checklist's task, a dependency on a task being deleted) is refused with the reason, and
  nothing of it is saved. The flat task-template list is read-only.
- Runs are written only by the engine (`offboarding.engine`): their pages are read-only. IT watches
  progress, failures ("blocked by <task>: <error>" for a task failed for good), overdue tasks and
  figures, and cancels a run with a reason
  (`portal.admin.ConfirmAction`). Lists are built in a constant number of queries.
"""

import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import EmploymentType
from offboarding import engine, selectors
from offboarding.actions import action_choices, registry
from offboarding.admin.common import ReasonForm, YesNoFilter, employee_link, pretty_json
from offboarding.models import (
    ChecklistKind,
    ChecklistRun,
    ChecklistTemplate,
    RunStatus,
    Task,
    TaskStatus,
    TaskTemplate,
)
from portal.admin import ActionsOnlyRecordMixin, ConfirmAction, PortalModelAdmin, ReadOnlyInline, overdue_badge


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
        cycle = engine.dependency_cycle(edges, names)
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
    """A saved template failed `engine.template_validate`; the save is rolled back."""


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

    def get_base_queryset(self, request):
        return (
            super()
            .get_base_queryset(request)
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
            engine.template_validate(template=form.instance)
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
class TaskTemplateAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
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

    @admin.display(description="overdue")
    def overdue(self, obj):
        return overdue_badge(obj.is_overdue())

    @admin.display(description="last error")
    def error(self, obj):
        if not obj.last_error:
            return "—"
        return obj.last_error if len(obj.last_error) <= 120 else f"{obj.last_error[:117]}..."


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


def _cancel(request, run, data):
    engine.run_cancel(run=run, acting_user=request.user, reason=data["reason"])


def _running_runs(modeladmin, request, queryset):
    """The running runs selected; each other one is reported as already finished or cancelled."""
    runs = list(queryset.select_related("employee").filter(status=RunStatus.RUNNING).order_by("pk"))
    for run in queryset.exclude(status=RunStatus.RUNNING).select_related("employee"):
        modeladmin.message_user(request, f"{run}: already {run.get_status_display().lower()}.", messages.ERROR)
    return runs


@admin.register(ChecklistRun)
class ChecklistRunAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
    list_display = (
        "__str__",
        "employee_name",
        "kind",
        "event_date",
        "status",
        "progress",
        "failed",
        "blocked_by",
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
        "blocked_by",
        ("time_to_provision_display", "time_to_deprovision_display", "last_revocation_at"),
        "details_display",
    )
    inlines = [TaskInline]
    actions = ["cancel_runs"]

    def get_base_queryset(self, request):
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

    @admin.display(description="blocked by")
    def blocked_by(self, obj):
        """ "blocked by <task>: <error>" for a run with a failed task, linking to that task; else "—"."""
        text = selectors.run_blocked_by(obj)
        if not text:
            return "—"
        url = reverse("admin:offboarding_task_changelist")
        return format_html(
            '<a class="portal-blocked" href="{}?run__id__exact={}&amp;status__exact=failed">{}</a>', url, obj.pk, text
        )

    @admin.display(description="overdue", ordering="overdue_tasks")
    def overdue(self, obj):
        return overdue_badge(obj.overdue_tasks > 0)

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

    cancel_runs = ConfirmAction(
        form_class=ReasonForm,
        apply=_cancel,
        description="Cancel selected runs (skips their open tasks)",
        submit_label="Cancel runs",
        done_message="Cancelled",
        select=_running_runs,
    )
