"""Self-service forms for access requests, decisions and delegations. Services validate the rules."""

from django import forms

from accounts.models import AccessRequest, Application, ApprovalStep, Employee, EmployeeStatus, ReviewItem
from portal.forms import DateInput
from portal.limits import text_limit, text_limit_message


class ApplicationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Application) -> str:
        extra = f"levels: {', '.join(obj.access_levels)}"
        if obj.max_access_days:
            extra += f"; at most {obj.max_access_days} days"
        return f"{obj.name} ({extra})"


class AccessRequestForm(forms.Form):
    application = ApplicationChoiceField(
        queryset=Application.objects.none(), empty_label="Choose an application", help_text="Requestable applications."
    )
    level = forms.ChoiceField(choices=(), help_text="The access level you need in that application.")
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=text_limit(AccessRequest, "justification"),
        help_text="Why you need it; your approvers read this.",
        error_messages={
            "required": "Say why you need this access: a justification is required.",
            "max_length": text_limit_message(AccessRequest, "justification"),
        },
    )
    end_date = forms.DateField(
        required=False,
        widget=DateInput,
        help_text="Last day you need it; leave empty for no end (some applications require one).",
    )

    def __init__(self, *args, applications=None, **kwargs):
        super().__init__(*args, **kwargs)
        apps = list(applications if applications is not None else Application.objects.filter(requestable=True))
        self.fields["application"].queryset = Application.objects.filter(pk__in=[a.pk for a in apps]).order_by("name")
        levels = []
        for app in apps:
            levels.extend(level for level in app.access_levels if level not in levels)
        self.fields["level"].choices = [(level, level) for level in levels or ["user"]]

    def clean_justification(self):
        value = self.cleaned_data["justification"].strip()
        if not value:
            raise forms.ValidationError("Say why you need this access: a justification is required.")
        return value


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")], widget=forms.HiddenInput)
    comment = forms.CharField(
        required=False,
        max_length=text_limit(ApprovalStep, "comment"),
        error_messages={"max_length": text_limit_message(ApprovalStep, "comment")},
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when you reject: the requester reads it.",
    )


class DelegateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Employee) -> str:
        return f"{obj.full_name} — {obj.title or 'no title'} ({obj.work_email})"


class DelegationForm(forms.Form):
    delegate = forms.CharField(
        label="Colleague (work email)",
        max_length=254,
        help_text="The work email of the colleague who decides for you.",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    starts_on = forms.DateField(label="First day", widget=DateInput)
    ends_on = forms.DateField(label="Last day", widget=DateInput)
    reason = forms.CharField(required=False, max_length=200, help_text="Optional, e.g. “Holiday”.")

    def clean_delegate(self):
        email = self.cleaned_data["delegate"].strip().lower()
        employee = Employee.objects.filter(work_email__iexact=email).exclude(status=EmployeeStatus.TERMINATED).first()
        if employee is None:
            raise forms.ValidationError("Enter the work email of a colleague who can sign in to Portal.")
        return employee


class ReviewDecisionForm(forms.Form):
    """One review item: keep, revoke or change level, with a comment (required to revoke)."""

    decision = forms.ChoiceField(
        choices=[("keep", "Keep"), ("revoke", "Revoke"), ("change_level", "Change level")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose keep, revoke or change level."},
    )
    new_level = forms.ChoiceField(required=False, label="New level", help_text="Only when you change the level.")
    comment = forms.CharField(
        required=False,
        max_length=text_limit(ReviewItem, "comment"),
        error_messages={"max_length": text_limit_message(ReviewItem, "comment")},
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when you revoke: say why. The audit evidence keeps it.",
    )

    def __init__(self, *args, levels=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_level"].choices = [("", "—")] + [(level, level) for level in levels]


class ReviewBulkForm(forms.Form):
    """The same decision on the ticked items, or on every item the filters show."""

    decision = forms.ChoiceField(
        choices=[("keep", "Keep"), ("revoke", "Revoke")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose keep or revoke for the items."},
    )
    comment = forms.CharField(
        required=False,
        max_length=text_limit(ReviewItem, "comment"),
        error_messages={"max_length": text_limit_message(ReviewItem, "comment")},
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when you revoke.",
    )
    scope = forms.ChoiceField(
        choices=[("selected", "The items I ticked"), ("filtered", "Every item the filters show")],
        initial="selected",
        widget=forms.RadioSelect,
    )
