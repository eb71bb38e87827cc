"""The demo company's target systems, on 127.0.0.1 beside `make run`: one SCIM 2.0 service, one webhook receiver.

The demo's SCIM applications (the ones holding `SCIM_TOKEN`; see `demo.access`) are tenants of one
`portal.targets.ScimTarget` (scim2-server), `http://127.0.0.1:<scim port>/<tenant>/v2`; the webhook
application (holding `WEBHOOK_SECRET`) posts to one `portal.targets.WebhookTarget`. `manage.py serve`
starts them (`manage.py demo_targets`, a companion process added in `DemoConfig.ready()`) on the
web port + 1 and + 2, or `PORTAL_DEMO_SCIM_PORT` / `PORTAL_DEMO_WEBHOOK_PORT`, and stops them with
the web server and the worker.

`DemoTargets.start()`:
- loads the accounts Portal says exist (active or being revoked) into the SCIM service, with their
  level's group, and into the webhook receiver: the applications had these people before Portal
  was connected to them, as real ones do, so a leaver's revocation finds the account. The
  targets keep their state in memory: at the next start it is loaded again from Portal;
- then listens on both ports (a port taken fails in plain words: `TargetsNotStarted`);
- points the demo applications at these ports where their config names others (a database seeded
  for another `PORT`), one history row each, attributed to nobody (the system).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.db import transaction

from accounts.models import Application, ConnectorType, Entitlement, EntitlementStatus
from portal.history import set_history_user
from portal.targets import ScimTarget, WebhookTarget

HOST = "127.0.0.1"
SCIM_TOKEN = "demo-only-scim-token-0123456789"
WEBHOOK_SECRET = "demo-only-webhook-secret-0123456789"
WEBHOOK_PATH = WebhookTarget.path
DEFAULT_WEB_PORT = 8000
KEEP_CALLS = 5000  # calls each target keeps for inspection; a demo may run for days
HELD = (EntitlementStatus.ACTIVE, EntitlementStatus.REVOKING)  # accounts the application has


class TargetsNotStarted(RuntimeError):
    """A target could not listen on its port; the message says which and what to do."""


def target_ports(web_port: int = DEFAULT_WEB_PORT, environ=None) -> tuple[int, int]:
    """(SCIM port, webhook port) for a web server on `web_port`: +1 and +2, unless
    `PORTAL_DEMO_SCIM_PORT` / `PORTAL_DEMO_WEBHOOK_PORT` say otherwise."""
    environ = os.environ if environ is None else environ
    ports = []
    for name, default in (("PORTAL_DEMO_SCIM_PORT", web_port + 1), ("PORTAL_DEMO_WEBHOOK_PORT", web_port + 2)):
        value = (environ.get(name) or "").strip()
        if value and not (value.isdigit() and 0 < int(value) < 65536):
            raise TargetsNotStarted(f"{name} must be a port number (1-65535), not {value!r}.")
        ports.append(int(value) if value else default)
    return ports[0], ports[1]


def scim_config(tenant: str, levels: list[str], *, port: int = DEFAULT_WEB_PORT + 1) -> dict:
    """A demo SCIM application's connector config: every level but the first is a group "<tenant> <level>".
    Seeded for the default ports; the targets point the applications at theirs when they start."""
    return {
        "url": f"http://{HOST}:{port}/{tenant}/v2",
        "token": SCIM_TOKEN,
        "groups": {level: f"{tenant} {level}" for level in levels[1:]},
        "timeout": 5,
    }


def webhook_config(*, port: int = DEFAULT_WEB_PORT + 2) -> dict:
    return {"url": f"http://{HOST}:{port}{WEBHOOK_PATH}", "secret": WEBHOOK_SECRET, "timeout": 5}


def scim_applications():
    """The demo's SCIM applications (they hold the demo's token), by name."""
    return Application.objects.filter(connector=ConnectorType.SCIM, connector_config__token=SCIM_TOKEN).order_by("name")


def webhook_applications():
    return Application.objects.filter(
        connector=ConnectorType.WEBHOOK, connector_config__secret=WEBHOOK_SECRET
    ).order_by("name")


def tenant_of(application: Application) -> str:
    """The tenant in `http://host:port/<tenant>/v2`."""
    return urlsplit(application.connector_config["url"]).path.strip("/").split("/", 1)[0]


@dataclass
class DemoTargets:
    """The demo's SCIM service and webhook receiver; a context manager (started, then stopped)."""

    scim_port: int
    webhook_port: int
    scim: ScimTarget = field(init=False)
    webhook: WebhookTarget = field(init=False)
    loaded: dict[str, int] = field(init=False, default_factory=dict)  # accounts loaded per application
    repointed: list[str] = field(init=False, default_factory=list)

    def __post_init__(self):
        self.scim = ScimTarget(SCIM_TOKEN, host=HOST, keep_calls=KEEP_CALLS)
        self.webhook = WebhookTarget(WEBHOOK_SECRET, host=HOST, keep_calls=KEEP_CALLS)

    def __enter__(self) -> DemoTargets:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> DemoTargets:
        # The accounts first, then the ports: a call that comes in at once finds what Portal has there.
        self.load_accounts()
        for name, server, port in (("SCIM", self.scim, self.scim_port), ("webhook", self.webhook, self.webhook_port)):
            try:
                server.start(port)
            except OSError as exc:
                self.stop()
                raise TargetsNotStarted(
                    f"The demo's {name} target cannot listen on {HOST}:{port} ({exc.strerror or exc}). "
                    "Another program (or another `make run`) uses it: choose another PORT, at least 3 apart, "
                    f"or set PORTAL_DEMO_{name.upper()}_PORT."
                ) from exc
        self.repointed = self.point_applications()
        return self

    def stop(self) -> None:
        self.scim.stop()
        self.webhook.stop()

    @transaction.atomic
    def point_applications(self) -> list[str]:
        """Point the demo applications at these ports where they name others; the names of those changed."""
        changed = []
        for application in [*scim_applications().select_for_update(), *webhook_applications().select_for_update()]:
            config = application.connector_config
            if application.connector == ConnectorType.SCIM:
                url = self.scim.url(tenant_of(application))
            else:
                url = self.webhook.url
            if config.get("url") == url:
                continue
            application.connector_config = {**config, "url": url}
            application._change_reason = "The demo's target systems listen on other ports (manage.py demo_targets)."
            set_history_user(application, None)
            application.save(update_fields=["connector_config"])
            changed.append(application.name)
        return changed

    def load_accounts(self) -> None:
        """The accounts Portal says these applications have, created in the targets directly (not calls)."""
        for application in scim_applications():
            tenant = tenant_of(application)
            groups = application.connector_config.get("groups") or {}
            for group in dict.fromkeys(groups.values()):
                if self.scim.group(group, tenant=tenant) is None:
                    self.scim.add_group(group, tenant=tenant)
            known = {name.lower() for name in self.scim.users(tenant=tenant)}
            members: dict[str, list[str]] = {}
            for entitlement in self._held(application):
                employee = entitlement.employee
                if not employee.work_email or employee.work_email.lower() in known:
                    continue
                given = employee.preferred_name or employee.first_name
                user_id = self.scim.add_user(
                    employee.work_email,
                    tenant=tenant,
                    external_id=employee.employee_number,
                    display_name=f"{given} {employee.last_name}",
                    given_name=given,
                    family_name=employee.last_name,
                )
                if entitlement.level in groups:
                    members.setdefault(groups[entitlement.level], []).append(user_id)
                known.add(employee.work_email.lower())
            for group, user_ids in members.items():
                self.scim.add_members(group, user_ids, tenant=tenant)
            self.loaded[application.name] = len(known)
        for application in webhook_applications():
            count = 0
            for entitlement in self._held(application):
                number = entitlement.employee.employee_number
                account = {"active": True, "level": entitlement.level, "external_id": f"ext-{number}"}
                self.webhook.app_accounts.setdefault((application.name, number), {**account, "disabled": False})
                count += 1
            self.loaded[application.name] = count

    @staticmethod
    def _held(application):
        return (
            Entitlement.objects.filter(application=application, status__in=HELD)
            .select_related("employee")
            .only(
                "level",
                "employee__work_email",
                "employee__employee_number",
                "employee__first_name",
                "employee__preferred_name",
                "employee__last_name",
            )
            .order_by("pk")
        )

    def summary(self) -> str:
        """What runs where, in one paragraph for the console."""
        scim_apps = [f"{a.name} ({self.loaded.get(a.name, 0)} accounts)" for a in scim_applications()]
        hook_apps = [a.name for a in webhook_applications()]
        lines = [
            f"Demo targets: SCIM 2.0 service at {self.scim.base_url}/<app>/v2 for "
            f"{', '.join(scim_apps) or 'no application'}; webhook receiver at {self.webhook.url} for "
            f"{', '.join(hook_apps) or 'no application'}."
        ]
        if self.repointed:
            lines.append(f"Demo targets: pointed {', '.join(self.repointed)} at these ports.")
        return "\n".join(lines)


def serve_companion(web_port: int) -> dict[str, list[str]]:
    """For `manage.py serve` on `web_port`: the demo targets' command (`manage.py demo_targets`)."""
    scim_port, webhook_port = target_ports(web_port)
    return {"demo targets": ["demo_targets", "--scim-port", str(scim_port), "--webhook-port", str(webhook_port)]}
