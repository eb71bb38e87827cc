"""API tokens in the admin: IT sees every token (never its secret) and revokes one; keys are read only."""

from django.contrib import admin, messages

from api.models import ApiToken, IdempotencyKey
from api.services import api_token_revoke
from portal.admin import (
    ActionsOnlyRecordMixin,
    PortalModelAdmin,
    ReadOnlyRecordMixin,
    ScopedAdminMixin,
    UnreadableQueryMixin,
)


@admin.register(ApiToken)
class ApiTokenAdmin(ActionsOnlyRecordMixin, PortalModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("user", "revoked_by")
    search_fields = ("name", "prefix", "user__username")
    # Made by their owner on /api/tokens/ (so only they see the secret), revoked, never deleted (the audit
    # log keeps naming them): no add, no delete, no edit; the hash is not shown.
    fields = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "revoked_by")
    actions = ["revoke"]

    @admin.action(permissions=["change"], description="Revoke selected API tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, acting_user=request.user)
            count += 1
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    list_display = ("key", "user", "method", "path", "response_status", "created_at")
    list_select_related = ("user",)
    search_fields = ("key", "user__username")
    readonly_fields = ("user", "key", "fingerprint", "method", "path", "response_status", "response_body", "created_at")
