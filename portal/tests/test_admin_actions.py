"""The one "confirm then apply" admin action (`portal.admin.ConfirmAction`), on a throwaway admin.

A test admin site of its own serves `auth.Group` with one such action, "rename" (a suffix is
asked for, then added to each selected group's name; a group called "locked" refuses), so
these tests need no Portal app.
"""

import pytest
from django import forms
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory
from django.urls import path

from portal.admin import ACTION_FORM_TEMPLATE, ConfirmAction

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


class RenameForm(forms.Form):
    suffix = forms.CharField(max_length=10)


def rename(request, group, data):
    if group.name == "locked":
        raise ValidationError("a locked group keeps its name.")
    group.name += data["suffix"]
    group.save(update_fields=["name"])


class GroupAdmin(admin.ModelAdmin):
    actions = ["rename"]
    rename = ConfirmAction(
        form_class=RenameForm,
        apply=rename,
        description="Rename selected groups",
        submit_label="Rename",
        done_message="Renamed",
        select=lambda modeladmin, request, queryset: list(queryset.order_by("name")),
    )


site = admin.AdminSite(name="admin")
site.register(Group, GroupAdmin)
urlpatterns = [path("admin/", site.urls)]

CHANGELIST = "/admin/auth/group/"


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def names():
    return sorted(Group.objects.values_list("name", flat=True))


@pytest.fixture
def groups():
    Group.objects.all().delete()  # the staff groups `migrate` made; these tests count only their own
    return [Group.objects.create(name=name) for name in ("alpha", "beta", "locked")]


def staff(*codenames):
    user = User.objects.create_user("staff", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="auth", codename__in=codenames))
    return user


@pytest.fixture
def editor():
    return staff("view_group", "change_group")


def post_action(client, groups, **form):
    return client.post(CHANGELIST, {"action": "rename", "_selected_action": [g.pk for g in groups], **form})


def test_the_first_post_shows_the_form_and_the_selected_objects_and_changes_nothing(client, editor, groups):
    client.force_login(editor)
    response = post_action(client, groups[:2], index=0)
    assert response.status_code == 200
    assert response.templates[0].name == ACTION_FORM_TEMPLATE
    assert not response.context["form"].is_bound
    assert response.context["objects"] == ["alpha", "beta"]
    assert response.context["title"] == "Rename: 2 groups"
    html = response.content.decode()
    assert 'name="suffix"' in html and 'value="Rename"' in html
    assert '<input type="hidden" name="action" value="rename">' in html
    assert names() == ["alpha", "beta", "locked"]


def test_invalid_input_shows_the_form_again_with_the_error_and_applies_nothing(client, editor, groups):
    client.force_login(editor)
    response = post_action(client, groups[:2], apply="1", suffix="")
    assert response.status_code == 200
    assert response.context["form"].errors == {"suffix": ["This field is required."]}
    assert "This field is required." in response.content.decode()
    assert names() == ["alpha", "beta", "locked"]
    assert texts(response) == []


def test_valid_input_applies_to_each_object_and_reports_each_refusal(client, editor, groups):
    client.force_login(editor)
    response = post_action(client, groups, apply="1", suffix="-2")
    assert response.status_code == 302
    assert names() == ["alpha-2", "beta-2", "locked"]
    assert texts(response) == ["Renamed: alpha-2, beta-2.", "locked: a locked group keeps its name."]


def test_without_the_permission_the_action_is_not_offered_and_applies_nothing(client, groups):
    client.force_login(staff("view_group"))
    page = client.get(CHANGELIST)
    assert page.status_code == 200 and page.context["action_form"] is None
    post_action(client, groups[:1], apply="1", suffix="-2")
    assert names() == ["alpha", "beta", "locked"]


def test_called_without_the_permission_it_refuses(groups):
    request = RequestFactory().post(CHANGELIST, {"apply": "1", "suffix": "-2"})
    request.user = staff("view_group")
    with pytest.raises(PermissionDenied):
        GroupAdmin.rename(site.get_model_admin(Group), request, Group.objects.all())
    assert names() == ["alpha", "beta", "locked"]


def test_an_object_page_posts_to_itself_and_shows_a_refusal_on_the_form(rf, editor, groups):
    locked = groups[2]
    model_admin = site.get_model_admin(Group)
    request = rf.post("/admin/auth/group/3/rename/", {"apply": "1", "suffix": "-2"})
    request.user = editor
    response = GroupAdmin.rename.run(
        model_admin, request, [locked], back_url="/back/", back_label="locked", errors_on_form=True
    )
    assert response.context_data["action"] is None
    assert response.context_data["form"].non_field_errors() == ["a locked group keeps its name."]
    assert (response.context_data["back_url"], response.context_data["back_label"]) == ("/back/", "locked")
    assert names() == ["alpha", "beta", "locked"]


def test_the_overdue_badge_warns_in_red_and_is_a_dash_otherwise():
    from portal.admin import overdue_badge

    assert ">Overdue<" in overdue_badge(True) and "#ba2121" in overdue_badge(True)
    assert overdue_badge(False) == "—"
