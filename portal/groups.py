"""The standard staff groups and their model permissions.

- IT admin: everything in Portal's apps, users and groups, the task queue, staff second-factor devices.
- IT helpdesk: day-to-day changes (add, change, view) to people, access and hardware;
  read-only on settings-like models (applications, roles, licenses, departments,
  locations, asset models); no deletes, no users, groups or queue.
- Auditor: view only, everywhere (history and exports included).

Personal contact data (`accounts.view_personal_data`: see, search and export personal email, phone and
home address) is IT admin's alone: a "view" permission that the helpdesk and auditors do not get.

`groups_sync` is idempotent and runs after every `migrate`, so the groups always
match this file.
"""

from django.contrib.auth.models import Group, Permission

IT_ADMIN = "IT admin"
IT_HELPDESK = "IT helpdesk"
AUDITOR = "Auditor"

PORTAL_APPS = ("accounts", "assets", "offboarding", "portal", "api")
ADMIN_EXTRA_APPS = ("auth", "django_q", "otp_totp", "django_otp_webauthn")

# Helpdesk changes these day to day; everything else in PORTAL_APPS it may only view.
HELPDESK_CHANGES = {
    "accounts": {"employee", "entitlement", "accessrequest", "approvalstep"},
    "assets": {"hardwareasset", "assetcheckout"},
    "offboarding": {"checklistrun", "task", "hardwarereturn", "changerequest"},
}


# View permissions that only IT admins get, although they start with "view_".
ADMIN_ONLY = {("accounts", "view_personal_data")}


def _perms(app_labels):
    return Permission.objects.filter(content_type__app_label__in=app_labels).select_related("content_type")


def groups_sync() -> dict[str, Group]:
    """Create or update the three groups so their permissions are exactly the ones above."""
    portal_perms = list(_perms(PORTAL_APPS))

    admin_group, _ = Group.objects.get_or_create(name=IT_ADMIN)
    admin_group.permissions.set(portal_perms + list(_perms(ADMIN_EXTRA_APPS)))

    helpdesk_perms = []
    for perm in portal_perms:
        action = perm.codename.split("_", 1)[0]
        model = perm.content_type.model
        if (perm.content_type.app_label, perm.codename) in ADMIN_ONLY:
            continue
        if (
            action == "view"
            or action in {"add", "change"}
            and model in HELPDESK_CHANGES.get(perm.content_type.app_label, ())
        ):
            helpdesk_perms.append(perm)
    helpdesk_group, _ = Group.objects.get_or_create(name=IT_HELPDESK)
    helpdesk_group.permissions.set(helpdesk_perms)

    auditor_group, _ = Group.objects.get_or_create(name=AUDITOR)
    auditor_group.permissions.set(
        [
            p
            for p in portal_perms + list(_perms(("django_q",)))
            if p.codename.startswith("view_") and (p.content_type.app_label, p.codename) not in ADMIN_ONLY
        ]
    )
    return {IT_ADMIN: admin_group, IT_HELPDESK: helpdesk_group, AUDITOR: auditor_group}
