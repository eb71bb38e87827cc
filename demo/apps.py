from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo company (`seed_demo`), the scale seeder (`seed_scale`) and the demo checklist templates.

    The top of the tree, beside `config`: it may import every app and is imported by none. It writes
    only through the apps' services, so the demo shows nothing the product would refuse.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo company"

    def ready(self):
        from portal.management.commands.serve import companion_add

        # `manage.py serve` (make run) also runs the demo's target systems, so its automated tasks succeed.
        companion_add(_serve_companion)


def _serve_companion(web_port: int) -> dict[str, list[str]]:
    from demo.targets import serve_companion  # imported when serve starts, not by every manage.py command

    return serve_companion(web_port)
