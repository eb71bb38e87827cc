from django.apps import AppConfig


class OffboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "offboarding"

    def ready(self):
        from accounts.hooks import access_request_approved

        # An approved access request is provisioned by the lifecycle engine.
        access_request_approved.connect("offboarding.tasks.access_request_fulfil")
