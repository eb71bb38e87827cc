"""The employee page: registers `Employee`, composed from accounts' `EmployeeAdminBase`, assets'
hardware inline and holder picker, and the lifecycle, which lives here (accounts and assets do
not import the engine):

- Adding an employee starts their join run (`joiner.joiner_start`).
- Changing role, department or manager first shows a preview of the access change (add,
  revoke, keep, with reasons); "Apply" saves the change and starts the move run
  (`mover.mover_apply`). Other fields save as usual.
- "Terminate…" (a button on the employee page, and an action on the list) asks for the last
  day, immediate or at the end of the last day, and a reason, then calls
  `leaver.employee_terminate`. The status cannot be set to terminated by editing the form.
- A read-only inline lists the person's checklist runs with their progress.
- The HR file import (accounts' `EmployeeImportAdminMixin`) does the same through the
  `employees_imported` handler (`flows.imports`): new rows start their join run, a changed role,
  department or manager is applied as a move.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts.admin import EmployeeAdminBase
from accounts.models import Employee, EmployeeStatus
from assets.admin import HardwareHolderPickerMixin, HeldHardwareInline
from offboarding import conf
from offboarding.flows import joiner, leaver, mover
from offboarding.models import FINISHED_TASK_STATUSES, ChecklistRun
from portal.admin import ConfirmAction, ReadOnlyInline, report_action_results

TERMINATE_TEMPLATE = "admin/offboarding/employee/terminate.html"
MOVER_PREVIEW_TEMPLATE = "admin/offboarding/employee/mover_preview.html"
CHANGE_FORM_TEMPLATE = "admin/offboarding/employee/change_form.html"
MOVER_CONFIRM = "_mover_confirm"


class DisplayOnlyFormSet(BaseInlineFormSet):
    """A formset that only shows rows: it never validates nor saves anything, so a change form posted
    without its management data (a form built before this inline existed) still saves."""

    def full_clean(self):
        self._errors = []
        self._non_form_errors = self.error_class(renderer=self.renderer)


class ChecklistRunInline(ReadOnlyInline):
    """The person's join, move and leave runs, newest first, with how many tasks are finished."""

    model = ChecklistRun
    formset = DisplayOnlyFormSet
    fk_name = "employee"
    fields = ("kind", "event_date", "effective_at", "status", "progress", "time_to_provision", "time_to_deprovision")
    ordering = ("-created_at", "-id")
    verbose_name_plural = "Checklists (join, move, leave)"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("employee")
            .annotate(
                tasks_total=Count("tasks"),
                tasks_finished=Count("tasks", filter=Q(tasks__status__in=FINISHED_TASK_STATUSES)),
            )
        )

    @admin.display(description="progress")
    def progress(self, obj):
        total = getattr(obj, "tasks_total", None)
        if total is None:
            return "—"
        return f"{obj.tasks_finished} of {total} tasks done"


class TerminateForm(forms.Form):
    last_day = forms.DateField(
        initial=timezone.localdate,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The last day of employment (becomes the end date). Not before the start date.",
    )
    when = forms.ChoiceField(
        label="Cut-off",
        widget=forms.RadioSelect,
        choices=[
            ("end_of_last_day", "At the end of the last day (future-dated)"),
            ("now", "Immediately: disable the login and revoke access now"),
        ],
        initial="end_of_last_day",
    )
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Kept with the leave checklist and in the audit log.",
    )


def _selected_employees(modeladmin, request, queryset):
    return list(queryset.select_related("role"))


def _employee_line(employee) -> str:
    role = f", {employee.role}" if employee.role else ""
    return f"{employee} — {employee.get_status_display()}, started {employee.start_date:%Y-%m-%d}{role}"


def _terminate(request, employee, data) -> str:
    already = leaver.open_leave_run(employee)
    run = leaver.employee_terminate(
        employee=employee,
        last_day=data["last_day"],
        acting_user=request.user,
        immediate=data["when"] == "now",
        reason=data["reason"],
    )
    cut_off = timezone.localtime(run.effective_at)
    note = "already being terminated" if already else "cut-off"
    return f"{employee} ({note} {cut_off:%Y-%m-%d %H:%M})"


# Composes accounts' EmployeeAdminBase (list, search, access, deletion rules), assets' hardware inline
# and holder picker, and the lifecycle below (join on add, mover preview, terminate, checklists).
@admin.register(Employee)
class EmployeeAdmin(HardwareHolderPickerMixin, EmployeeAdminBase):
    inlines = [*EmployeeAdminBase.inlines, HeldHardwareInline, ChecklistRunInline]
    actions = [*EmployeeAdminBase.actions, "terminate_selected", "start_join"]
    change_form_template = CHANGE_FORM_TEMPLATE

    # --- URLs and the terminate button -------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(
                "<path:object_id>/terminate/",
                self.admin_site.admin_view(self.terminate_view),
                name="%s_%s_terminate" % info,  # noqa: UP031 - the admin's own naming pattern
            )
        ]
        return custom + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        obj = self.get_object(request, unquote(object_id))
        if (
            obj is not None
            and self.has_change_permission(request, obj)
            and obj.status != EmployeeStatus.TERMINATED
            and leaver.open_leave_run(obj) is None
        ):
            extra_context["terminate_url"] = reverse("admin:accounts_employee_terminate", args=[obj.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    # --- Form: the status is not set to terminated by hand --------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if obj is None or "status" not in form_class.base_fields:
            return form_class

        class LifecycleEmployeeForm(form_class):
            def clean_status(self):
                status = self.cleaned_data.get("status")
                if status == EmployeeStatus.TERMINATED and self.instance.status != EmployeeStatus.TERMINATED:
                    raise forms.ValidationError(
                        "Use “Terminate…” at the top of this page: it disables the login, revokes access "
                        "and opens the hardware returns."
                    )
                return status

        return LifecycleEmployeeForm

    # --- Mover: preview before saving a change of role, department or manager --------------

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id and MOVER_CONFIRM not in request.POST:
            preview = self._mover_preview_response(request, object_id)
            if preview is not None:
                return preview
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _mover_preview_response(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None or obj.status == EmployeeStatus.TERMINATED or not self.has_change_permission(request, obj):
            return None
        form_class = self.get_form(request, obj, change=True)
        form = form_class(request.POST, request.FILES, instance=obj)
        if not form.is_valid():
            return None  # the normal change form shows the errors
        changed = [name for name in mover.MOVER_FIELDS if name in form.changed_data]
        if not changed:
            return None
        original = Employee.objects.select_related("role", "department", "manager").get(pk=obj.pk)
        preview = mover.mover_preview(employee=original, **{name: form.cleaned_data[name] for name in changed})
        if not preview.has_changes:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview the move of {original.full_name}",
            "opts": self.opts,
            "original": original,
            "preview": preview,
            "grace_days": conf.lifecycle_setting("MOVER_GRACE_DAYS"),
            "post_items": [
                (key, value)
                for key, values in request.POST.lists()
                if key not in ("csrfmiddlewaretoken", MOVER_CONFIRM)
                for value in values
            ],
            "confirm_name": MOVER_CONFIRM,
            "change_url": reverse("admin:accounts_employee_change", args=[original.pk]),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, MOVER_PREVIEW_TEMPLATE, context)

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            if obj.status != EmployeeStatus.TERMINATED:
                try:
                    run = joiner.joiner_start(employee=obj, acting_user=request.user)
                except ValidationError as exc:
                    self.message_user(request, f"No join checklist: {' '.join(exc.messages)}", messages.WARNING)
                else:
                    self.message_user(
                        request, f"Join checklist started for {obj.start_date:%Y-%m-%d} (run #{run.pk}).", messages.INFO
                    )
            return
        changed = [name for name in mover.MOVER_FIELDS if name in form.changed_data]
        if not changed or obj.status == EmployeeStatus.TERMINATED or MOVER_CONFIRM not in request.POST:
            super().save_model(request, obj, form, change)
            return
        new_values = {name: getattr(obj, name) for name in changed}
        original = Employee.objects.get(pk=obj.pk)
        for name in changed:
            setattr(obj, name, getattr(original, name))
        super().save_model(request, obj, form, change)  # the other fields, as edited
        try:
            run = mover.mover_apply(employee=obj, changes=new_values, acting_user=request.user)
        except ValidationError as exc:
            self.message_user(request, f"The move was not applied: {' '.join(exc.messages)}", messages.ERROR)
            return
        obj.refresh_from_db()
        self.message_user(request, f"Move applied; move checklist run #{run.pk} started.", messages.INFO)

    # --- Joiner ------------------------------------------------------------------------------

    @admin.action(permissions=["change"], description="Start the join checklist of selected employees")
    def start_join(self, request, queryset):
        done, failed = [], []
        for employee in queryset:
            try:
                run = joiner.joiner_start(employee=employee, acting_user=request.user)
            except ValidationError as exc:
                failed.append((str(employee), " ".join(exc.messages)))
            else:
                done.append(f"{employee} (run #{run.pk})")
        report_action_results(self, request, done_message="Join checklist started", done=done, failed=failed)

    # --- Leaver ------------------------------------------------------------------------------

    terminate_selected = ConfirmAction(
        form_class=TerminateForm,
        apply=_terminate,
        description="Terminate selected employees…",
        submit_label="Terminate",
        done_message="Termination started",
        title="Terminate employees",
        template=TERMINATE_TEMPLATE,
        select=_selected_employees,
        describe=_employee_line,
    )

    def terminate_view(self, request, object_id):
        """One employee's termination page (the button on their page): a refusal is shown on the form."""
        employee = self.get_object(request, unquote(object_id))
        if employee is None:
            raise Http404("No such employee.")
        if not self.has_change_permission(request, employee):
            raise PermissionDenied
        change_url = reverse("admin:accounts_employee_change", args=[employee.pk])
        response = self.terminate_selected.run(
            self,
            request,
            [employee],
            back_url=change_url,
            back_label=str(employee),
            title=f"Terminate {employee.full_name}",
            errors_on_form=True,
        )
        return response or HttpResponseRedirect(change_url)
