"""Display helpers, the yes/no list filter and the reason / note forms the lifecycle admin pages share.

Registers nothing.
"""

import json

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from offboarding.models import Task
from portal.limits import text_limit, text_limit_message


def employee_link(employee):
    url = reverse("admin:accounts_employee_change", args=[employee.pk])
    return format_html('<a href="{}">{}</a>', url, employee.full_name)


def pretty_json(value) -> str:
    if not value:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class YesNoFilter(admin.SimpleListFilter):
    """A "Yes" / "No" filter on the `condition()` a subclass gives (a `Q` or an expression)."""

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        condition = self.condition()
        if self.value() == "yes":
            return queryset.filter(condition)
        if self.value() == "no":
            return queryset.exclude(condition)
        return queryset


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=text_limit(Task, "note"),
        error_messages={"max_length": text_limit_message(Task, "note", "The reason")},
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why; kept in the history with your name.",
    )


class NoteForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=text_limit(Task, "note"),
        error_messages={"max_length": text_limit_message(Task, "note")},
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What was done (optional); kept in the history with your name.",
    )
