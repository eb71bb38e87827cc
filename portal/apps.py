from django.apps import AppConfig
from django.db.models.signals import post_migrate


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
        # Cross-cutting: note at sign-in whether a self-service user opted in to a second factor.
        from django.contrib.auth.signals import user_logged_in

        from portal.mfa import second_factor_note_opt_in

        user_logged_in.connect(second_factor_note_opt_in, dispatch_uid="portal_second_factor_opt_in")
