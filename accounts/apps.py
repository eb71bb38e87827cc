from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self):
        from accounts import scoping
        from portal.scoping import scoping_install

        # Every Portal admin and the API read through `accounts.scoping.restrict` (portal reaches it here).
        scoping.register_accounts_and_portal_rules()
        scoping_install(scoping)
