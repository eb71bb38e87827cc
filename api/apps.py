from django.apps import AppConfig


class ApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "api"
    verbose_name = "REST API"

    def ready(self):
        from accounts.scoping import register_scope
        from api.models import ApiToken, IdempotencyKey

        # Scoped administration: a scoped user sees their own tokens and keys (a key keeps a response body).
        register_scope(ApiToken, own="user")
        register_scope(IdempotencyKey, own="user")
