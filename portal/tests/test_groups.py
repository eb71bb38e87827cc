"""`groups_sync`: the three staff groups (IT admin, IT helpdesk, auditor) and the rules that hold whatever
the apps' models are. What the groups may do with those models is proved in `config/tests/test_group_permissions.py`.
"""

import pytest
from django.contrib.auth.models import Group, Permission, User

from portal.groups import AUDITOR, IT_ADMIN, IT_HELPDESK, PORTAL_APPS, groups_sync

pytestmark = pytest.mark.django_db


def perms_of(group: Group) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def portal_perms() -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(content_type__app_label__in=PORTAL_APPS).select_related("content_type")
    }


def test_groups_sync_is_idempotent(groups):
    before = {name: (group.pk, perms_of(group)) for name, group in groups.items()}

    again = groups_sync()

    assert {name: (group.pk, perms_of(group)) for name, group in again.items()} == before
    assert Group.objects.filter(name__in=[IT_ADMIN, IT_HELPDESK, AUDITOR]).count() == 3


def test_groups_sync_removes_permissions_granted_by_hand(groups):
    helpdesk = groups[IT_HELPDESK]
    helpdesk.permissions.add(Permission.objects.get(content_type__app_label="auth", codename="delete_user"))

    groups_sync()

    assert "auth.delete_user" not in perms_of(helpdesk)


def test_it_admin_has_every_portal_permission_and_manages_users_and_the_queue(groups):
    admin = perms_of(groups[IT_ADMIN])

    assert portal_perms() <= admin
    assert {"auth.change_user", "auth.change_group", "django_q.delete_ormq", "portal.view_auditevent"} <= admin


def test_helpdesk_deletes_nothing_and_has_no_users_groups_or_queue(groups):
    helpdesk = perms_of(groups[IT_HELPDESK])

    assert not {perm for perm in helpdesk if ".delete_" in perm}
    assert not {perm for perm in helpdesk if perm.startswith(("auth.", "django_q."))}


# Personal contact data (see README "Personal data encrypted at rest") is IT admin's alone.
ADMIN_ONLY_VIEWS = {"accounts.view_personal_data"}


def test_helpdesk_sees_everything_in_portal(groups):
    helpdesk = perms_of(groups[IT_HELPDESK])
    assert {perm for perm in portal_perms() if ".view_" in perm} - ADMIN_ONLY_VIEWS <= helpdesk
    assert not ADMIN_ONLY_VIEWS & helpdesk


def test_only_it_admins_see_personal_data(groups):
    assert perms_of(groups[IT_ADMIN]) >= ADMIN_ONLY_VIEWS
    assert portal_perms() >= ADMIN_ONLY_VIEWS


def test_auditor_only_views_but_views_everything(groups):
    auditor = perms_of(groups[AUDITOR])

    assert auditor, "the auditor group has no permissions at all"
    assert all(perm.split(".", 1)[1].startswith("view_") for perm in auditor)
    assert {perm for perm in portal_perms() if ".view_" in perm} - ADMIN_ONLY_VIEWS <= auditor
    assert not ADMIN_ONLY_VIEWS & auditor
    assert {"portal.view_auditevent", "django_q.view_task"} <= auditor


def test_a_user_in_the_auditor_group_cannot_change_anything(groups):
    user = User.objects.create_user(username="auditor", is_staff=True)
    user.groups.add(groups[AUDITOR])

    assert user.has_perm("portal.view_auditevent")
    assert user.has_perm("django_q.view_task")
    assert not user.has_perm("auth.change_user")
    assert not user.has_perm("django_q.delete_ormq")
