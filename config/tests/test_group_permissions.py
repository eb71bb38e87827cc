"""The standard staff groups' rights over the apps' models: IT admin decides approvals and cancels requests,
helpdesk changes people, access and hardware but only views settings, the auditor views history and nothing else.

The rules that hold whatever the models are (`groups_sync` itself) are proved in `portal/tests/test_audit.py`.
"""

import pytest
from django.contrib.auth.models import Group, Permission

from accounts.models import CANCEL_REQUEST_PERM, DECIDE_STEP_PERM
from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK, groups_sync

pytestmark = pytest.mark.django_db


def perms_of(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_groups_sync_removes_an_app_permission_granted_by_hand(groups):
    helpdesk = groups[IT_HELPDESK]
    helpdesk.permissions.add(Permission.objects.get(codename="delete_employee"))

    groups_sync()

    assert "accounts.delete_employee" not in perms_of(helpdesk)


def test_it_admin_decides_approvals_and_cancels_requests(groups):
    admin = perms_of(groups[IT_ADMIN])
    assert {DECIDE_STEP_PERM, CANCEL_REQUEST_PERM, "portal.view_auditevent"} <= admin


def test_helpdesk_changes_people_access_and_hardware_but_only_views_settings(groups):
    helpdesk = perms_of(groups[IT_HELPDESK])

    assert {
        "accounts.add_employee",
        "accounts.change_employee",
        "accounts.change_entitlement",
        "accounts.add_accessrequest",
        "assets.change_hardwareasset",
        "assets.add_assetcheckout",
    } <= helpdesk
    # Settings-like models are read-only for helpdesk.
    assert {"accounts.view_application", "assets.view_license", "accounts.view_role"} <= helpdesk
    assert not helpdesk & {
        "accounts.change_application",
        "accounts.add_role",
        "assets.change_license",
        "accounts.change_location",
        "accounts.change_department",
    }
    # No approving on others' behalf.
    assert DECIDE_STEP_PERM not in helpdesk


def test_auditor_views_the_apps_history(groups):
    assert "accounts.view_historicalemployee" in perms_of(groups[AUDITOR])


def test_a_user_in_the_auditor_group_cannot_change_anything(auditor):
    assert auditor.has_perm("accounts.view_employee")
    assert auditor.has_perm("portal.view_auditevent")
    assert not auditor.has_perm("accounts.change_employee")
    assert not auditor.has_perm("assets.add_hardwareasset")
