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


class PortalConfig(AppConfig):
    """The ground every app builds on: audit log, queue, mail, history, base admin and import classes.

    It imports no Portal app; the project itself (settings, urls) is `config`.
    """

    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        # Cross-cutting: keep the standard staff groups in step with the permissions after each migrate.
        post_migrate.connect(_sync_groups, dispatch_uid="portal_sync_groups")
        checks.register(audit_signing_key_check, checks.Tags.security, deploy=True)
