from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo company (`seed_demo`), the scale seeder (`seed_scale`) and the demo checklist templates.

    The top of the tree, beside `config`: it may import every app and is imported by none. It writes
    only through the apps' services, so the demo shows nothing the product would refuse.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo company"
