"""Self-service forms: confirming a hardware return, a manager's move or leave request."""

from django import forms

from accounts.models import Department, Employee, EmployeeStatus, Location, Role
from offboarding.models import ChangeRequest, ReturnMethod, Task
from portal.forms import DateInput
from portal.limits import text_limit, text_limit_message


class ReturnShipForm(forms.Form):
    method = forms.ChoiceField(
        label="How it comes back", choices=ReturnMethod.choices, widget=forms.RadioSelect, required=True
    )
    drop_off_location = forms.ModelChoiceField(
        label="Office (drop-off)", queryset=Location.objects.order_by("name"), required=False, empty_label="Choose"
    )
    drop_off_date = forms.DateField(label="Day dropped off", required=False, widget=DateInput)
    carrier = forms.CharField(label="Courier (courier)", max_length=50, required=False)
    tracking_number = forms.CharField(label="Tracking number (courier)", max_length=100, required=False)


class CompleteTaskForm(forms.Form):
    note = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=text_limit(Task, "note"),
        error_messages={"max_length": text_limit_message(Task, "note")},
    )


class MoveRequestForm(forms.Form):
    new_role = forms.ModelChoiceField(
        label="New role", queryset=Role.objects.order_by("name"), required=False, empty_label="Unchanged"
    )
    new_department = forms.ModelChoiceField(
        label="New department", queryset=Department.objects.order_by("name"), required=False, empty_label="Unchanged"
    )
    new_manager = forms.EmailField(
        label="New manager (work email)", required=False, help_text="Leave empty to keep the manager."
    )
    effective_date = forms.DateField(label="First day in the new position", widget=DateInput)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=text_limit(ChangeRequest, "reason"),
        error_messages={"max_length": text_limit_message(ChangeRequest, "reason")},
        help_text="What changes and why; IT reads it.",
    )

    def clean_new_manager(self):
        email = (self.cleaned_data.get("new_manager") or "").strip().lower()
        if not email:
            return None
        employee = Employee.objects.filter(work_email__iexact=email).exclude(status=EmployeeStatus.TERMINATED).first()
        if employee is None:
            raise forms.ValidationError("Enter the work email of a current colleague.")
        return employee


class LeaveRequestForm(forms.Form):
    effective_date = forms.DateField(label="Last day of work", widget=DateInput)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=text_limit(ChangeRequest, "reason"),
        error_messages={"max_length": text_limit_message(ChangeRequest, "reason")},
        help_text="E.g. resignation; IT reads it.",
    )
