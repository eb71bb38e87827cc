from django.apps import AppConfig


class OffboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "offboarding"

    def ready(self):
        from accounts.scoping import register_scope
        from offboarding.models import (
            ChangeRequest,
            ChecklistRun,
            ChecklistTemplate,
            HardwareReturn,
            Task,
            TaskTemplate,
        )

        # Scoped administration: a run and everything in it by its person; templates are everyone's.
        for model in (ChecklistRun, HardwareReturn, ChangeRequest):
            register_scope(model, employees="employee")
        register_scope(Task, employees="run__employee")
        for model in (ChecklistTemplate, TaskTemplate):
            register_scope(model, unrestricted=True, reason="checklist templates: settings, no person")

        from accounts.hooks import (
            access_request_approved,
            access_review_decided,
            employee_joined,
            employee_left_now,
            employee_moved,
            employees_imported,
        )
        from offboarding import identity
        from offboarding.flows.imports import employees_imported as lifecycle_of_import

        # An approved access request is provisioned by the lifecycle engine.
        access_request_approved.connect("offboarding.tasks.access_request_fulfil")
        # A review's revoke or level change is applied by the lifecycle engine, as a visible task.
        access_review_decided.connect("offboarding.tasks.access_review_apply")
        # An HR import's new people get their join runs and its movers their move runs, in its transaction.
        employees_imported.connect(lifecycle_of_import)
        # People pushed by an identity provider (SCIM) join, move and leave in the SCIM request's transaction.
        employee_joined.connect(identity.identity_join)
        employee_moved.connect(identity.identity_move)
        employee_left_now.connect(identity.identity_leave_now)
