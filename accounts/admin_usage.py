"""Admin pages of the usage feeds: upload a sign-in log (read in the background, with a progress bar), the
imports so far, and the sign-ins that matched nothing (for shadow-IT discovery). Writes through
`accounts.services.usage`; imported by `accounts.admin`.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from accounts.conf import usage_setting
from accounts.models import Application, UnmatchedUsage, UsageImport, UsageSource
from accounts.services import usage
from portal.admin import ScopedAdminMixin, UnreadableQueryMixin

SOURCE_HELP = (
    "Okta: the System Log as JSON (an array or one event per line; user.authentication.sso events are read). "
    "Entra ID: the sign-in log downloaded as CSV or JSON from the admin center (or a Graph signIns page). "
    "One application's CSV: a header row with an email column and a last-active column (ISO dates)."
)


class UsageUploadForm(forms.ModelForm):
    """The upload: which kind of file, the application for a per-application CSV, the file."""

    source = forms.ChoiceField(choices=[(s.value, s.label) for s in usage.FILE_SOURCES], help_text=SOURCE_HELP)
    application = forms.ModelChoiceField(
        queryset=Application.objects.order_by("name"),
        required=False,
        help_text="Only for one application's CSV: every row is about this application.",
    )
    upload = forms.FileField(label="File", help_text="Up to the size PORTAL_USAGE_MAX_UPLOAD_MB allows.")

    class Meta:
        model = UsageImport
        fields = ["source", "application"]

    def clean(self):
        cleaned = super().clean()
        source, upload = cleaned.get("source"), cleaned.get("upload")
        if source:
            try:
                usage.check_source(source, cleaned.get("application"))
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    self.add_error(field, messages)
        if upload is not None:
            limit = usage_setting("MAX_UPLOAD_MB")
            if not upload.size:
                self.add_error("upload", "The file is empty.")
            elif upload.size > limit * 1024 * 1024:
                self.add_error("upload", f"The file is {upload.size / 1048576:.0f} MB; the limit is {limit} MB.")
        return cleaned


def progress_bar(obj: UsageImport):
    return format_html(
        '<progress max="100" value="{}" aria-label="{}% read">{}%</progress> {}%',
        obj.percent,
        obj.percent,
        obj.percent,
        obj.percent,
    )


@admin.register(UsageImport)
class UsageImportAdmin(ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """Uploads of sign-in logs and usage files. "Add" is the upload (IT admin); each import's page shows its
    progress while a worker reads it, then what it changed, or why the file was refused."""

    form = UsageUploadForm
    list_display = (
        "created_at",
        "source",
        "file_name",
        "status",
        "progress",
        "events_read",
        "entitlements_updated",
        "unmatched",
        "created_by",
    )
    list_select_related = ("created_by", "application")
    list_filter = ("status", "source")
    search_fields = ("file_name",)
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False
    readonly = (
        "status",
        "progress",
        "source",
        "application",
        "file_name",
        "file_size",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "events_read",
        "events_used",
        "pairs",
        "entitlements_updated",
        "unmatched",
        "error",
    )
    change_form_template = "admin/accounts/usageimport/change_form.html"

    @admin.display(description="progress")
    def progress(self, obj):
        return progress_bar(obj)

    def get_fields(self, request, obj=None):
        return ("source", "application", "upload") if obj is None else self.readonly

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly

    def has_change_permission(self, request, obj=None):
        return False  # an import is a record: nothing to edit (viewing needs the view permission)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        created = usage.usage_import_create(
            source=form.cleaned_data["source"],
            uploaded_file=form.cleaned_data["upload"],
            application=form.cleaned_data.get("application"),
            acting_user=request.user,
        )
        obj.pk, obj.file_name = created.pk, created.file_name

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"{obj.file_name} is being read in the background; this page shows its progress.")
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        return HttpResponseRedirect(reverse("admin:accounts_usageimport_change", args=[obj.pk]))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["usage_running"] = obj is not None and obj.status in (
            UsageImport.Status.PENDING,
            UsageImport.Status.READING,
        )
        context["usage_percent"] = obj.percent if obj is not None else 0
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


@admin.register(UnmatchedUsage)
class UnmatchedUsageAdmin(ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """Sign-ins that matched no application, no person or no live access: applications to register (or give
    an alias), people unknown to Portal, access Portal does not record. Read-only; IT admins may delete a row
    once dealt with (the next log that shows it lists it again)."""

    list_display = ("app_name", "user", "reason", "source", "count", "first_seen", "last_seen")
    list_filter = ("reason", "source", ("last_seen", admin.DateFieldListFilter))
    search_fields = ("app_name", "user")
    ordering = ("-last_seen", "-id")
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = (
        "source",
        "app_name",
        "user",
        "reason",
        "application",
        "employee",
        "count",
        "first_seen",
        "last_seen",
        "last_import",
    )
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_base_queryset(self, request):
        return super().get_base_queryset(request).select_related("application", "employee", "last_import")


__all__ = ["UsageImportAdmin", "UnmatchedUsageAdmin", "UsageSource"]
