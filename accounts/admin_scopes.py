"""Admin page of scoped administration: which departments and locations a helpdesk login is limited to.

IT admins add, change and delete scopes (`accounts.services.scopes`: checked, history, audit event);
what a scope then restricts is `accounts.scoping`. Imported by `accounts.admin`.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from accounts.models import AdminScope
from accounts.services import scopes
from portal.admin import PortalModelAdmin


class AdminScopeForm(forms.ModelForm):
    class Meta:
        model = AdminScope
        fields = ("user", "departments", "locations", "note")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            scopes.admin_scope_check(
                user=cleaned.get("user"),
                departments=cleaned.get("departments") or [],
                locations=cleaned.get("locations") or [],
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(None if field == "__all__" else field, messages)
        return cleaned


@admin.register(AdminScope)
class AdminScopeAdmin(PortalModelAdmin):
    """A helpdesk login's scope: at least one department or location; deleting it lifts the restriction."""

    form = AdminScopeForm
    list_display = ("user", "department_names", "location_names", "note", "updated_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name")
    ordering = ("user__username",)
    autocomplete_fields = ("user", "departments", "locations")
    readonly_fields = ("updated_at",)

    def get_base_queryset(self, request):
        return super().get_base_queryset(request).prefetch_related("departments", "locations")

    @admin.display(description="departments")
    def department_names(self, obj):
        return ", ".join(sorted(d.name for d in obj.departments.all())) or "—"

    @admin.display(description="locations")
    def location_names(self, obj):
        return ", ".join(sorted(loc.name for loc in obj.locations.all())) or "—"

    def save_model(self, request, obj, form, change):
        scopes.admin_scope_save(
            scope=obj,
            departments=form.cleaned_data["departments"],
            locations=form.cleaned_data["locations"],
            acting_user=request.user,
        )

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)  # the service already set the m2m fields

    def delete_model(self, request, obj):
        scopes.admin_scope_remove(scope=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset):
        for scope in queryset.select_related("user"):
            scopes.admin_scope_remove(scope=scope, acting_user=request.user)
