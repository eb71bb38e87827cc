from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate


def audit_signing_key_check(app_configs, **kwargs):
    """Deployment check: without PORTAL_AUDIT_SIGNING_KEY no audit checkpoint is signed."""
    from django.conf import settings

    if settings.PORTAL_AUDIT_SIGNING_KEY:
        return []
    return [
        checks.Warning(
            "PORTAL_AUDIT_SIGNING_KEY is not set: no signed audit checkpoints are made, so whoever can write "
            "the database could rewrite the audit log and recompute its hash chain unnoticed.",
            hint="Make a key with `python manage.py audit_signing_key` and set it in the environment.",
            id="portal.W001",
        )
    ]


def _sync_groups(sender, **kwargs):
    # post_migrate fires once per app, and each app's permissions are created by its own
    # signal; sync once, after the last app, when every permission exists.
    from django.apps import apps as global_apps

    # Django sends post_migrate only to apps with a models module, so "last" means the last of those.
    with_models = [config for config in global_apps.get_app_configs() if config.models_module is not None]
    if sender.label != with_models[-1].label:
        return
    from portal.groups import groups_sync

    groups_sync()


def _audit_chain_head(sender, using="default", **kwargs):
    # A flush (TransactionTestCase teardown) empties the chain head's table too; put the head back, as the
    # migration made it, so appends lock it at once (PostgreSQL; SQLite reads the last event instead).
    from django.db import connections

    if connections[using].vendor != "postgresql":
        return
    from portal.auditchain import GENESIS
    from portal.models import AuditChainHead, AuditEvent

    if not AuditChainHead.objects.using(using).filter(pk=1).exists():
        last = AuditEvent._base_manager.using(using).order_by("-seq").values_list("seq", "hash").first()
        seq, digest = last or (0, GENESIS)
        AuditChainHead.objects.using(using).get_or_create(pk=1, defaults={"seq": seq, "hash": digest})


class PortalConfig(AppConfig):
    """The ground every app builds on: audit log, queue, mail, history, base admin and import classes.

    It imports no Portal app; the project itself (settings, urls) is `config`.
    """

    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        # Cross-cutting: keep the standard staff groups in step with the permissions after each migrate.
        post_migrate.connect(_sync_groups, dispatch_uid="portal_sync_groups")
        # In a worker: a task may acknowledge its message in its own outcome's transaction (portal.queue).
        from django_q.signals import post_execute_in_worker, pre_execute

        from portal.queue import delivery_finished, delivery_started

        pre_execute.connect(delivery_started, dispatch_uid="portal_delivery_started")
        post_execute_in_worker.connect(delivery_finished, dispatch_uid="portal_delivery_finished")
        post_migrate.connect(_audit_chain_head, sender=self, dispatch_uid="portal_audit_chain_head")
        checks.register(audit_signing_key_check, checks.Tags.security, deploy=True)
        # Start-up refuses keys that cannot read what the database holds (a wrong or missing old key).
        from portal.field_keys import field_keys_check

        checks.register(field_keys_check, checks.Tags.security)
        # Cross-cutting: note at sign-in whether a self-service user opted in to a second factor.
        from django.contrib.auth.signals import user_logged_in

        from portal.mfa import second_factor_note_opt_in

        user_logged_in.connect(second_factor_note_opt_in, dispatch_uid="portal_second_factor_opt_in")
