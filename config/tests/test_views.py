"""Self-service shell: sign in and out, the home page scoped to the signed-in person (at a constant query
count), the error pages, the admin kept to staff, and `manage.py serve` starting and stopping web and worker."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.tests.factories import EmployeeFactory, UserFactory
from assets.services import asset_check_in
from config.tests.builders import give_access, give_hardware

HOME = "/"
LOGIN = "/login/"


# --- Signing in and out ----------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={HOME}"


@pytest.mark.django_db
def test_login_page_has_labelled_fields(client):
    response = client.get(LOGIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'name="viewport"' in html
    assert 'autocomplete="current-password"' in html


def test_bad_login_shows_a_clear_error(client, erin):
    response = client.post(LOGIN, {"username": "erin", "password": "wrong"})
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct username and password" in html


def test_good_login_lands_on_home(client, erin, password):
    response = client.post(LOGIN, {"username": "erin", "password": password}, follow=True)
    assert response.redirect_chain == [(reverse("home"), 302)]
    assert response.context["employee"] == erin


def test_signed_in_user_visiting_login_goes_home(client, erin):
    client.force_login(erin.user)
    assert client.get(LOGIN)["Location"] == reverse("home")


def test_logout_is_a_post_and_ends_the_session(client, erin):
    client.force_login(erin.user)
    page = client.get(HOME).content.decode()
    assert f'<form class="user-nav__logout" method="post" action="{reverse("logout")}">' in page

    assert client.get(reverse("logout")).status_code == 405  # a link cannot sign anyone out

    response = client.post(reverse("logout"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("login")
    assert "You have signed out." in response.content.decode()
    assert client.get(HOME).status_code == 302


# --- The home page shows the signed-in person's own data -----------------------------


def test_home_shows_profile_access_and_hardware(client, erin):
    client.force_login(erin.user)
    response = client.get(HOME)
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Erin Example",
        "Data Analyst",
        "Finance",
        "Morgan Manager",
        "Berlin HQ",
        "Active",
        erin.employee_number,
    ):
        assert text in html
    # Access: live entitlements with level, since, until and status.
    assert [e.application.name for e in response.context["entitlements"]] == ["Salesforce", "Slack"]
    assert "Old CRM" not in html  # revoked access is history, not "my access"
    # Until: the last day. It expires at midnight UTC starting 30 Jun, so 29 Jun is its last day.
    assert "29 Jun 2027" in html and "30 Jun 2027" not in html
    assert "1 Jan 2025" in html and "No end date" in html
    # Hardware: tag, model, category, since, terms.
    assert [a.asset_tag for a in response.context["hardware"]] == ["LT-0042", "PH-0007"]
    assert "Apple MacBook Pro 14" in html and "Google Pixel 9" in html and "Phone" in html
    laptop, phone = response.context["hardware"]
    assert laptop.checked_out_at is not None and laptop.terms_accepted_at is not None
    assert phone.terms_accepted_at is None
    assert "Not yet accepted" in html and "Accepted" in html


def test_home_never_shows_another_employees_data(client, erin, stranger):
    client.force_login(erin.user)
    html = client.get(HOME).content.decode()
    for text in ("Sam Stranger", "Payroll Secrets", "SECRET-999", "Precision 5690"):
        assert text not in html

    client.force_login(stranger.user)
    html = client.get(HOME).content.decode()
    assert "Payroll Secrets" in html and "SECRET-999" in html
    for text in ("Salesforce", "LT-0042", "MacBook Pro 14"):
        assert text not in html


def test_returned_hardware_leaves_my_hardware(client, erin):
    laptop = erin.hardware.get(asset_tag="LT-0042")
    asset_check_in(asset=laptop, acting_user=None)
    client.force_login(erin.user)
    response = client.get(HOME)
    assert [a.asset_tag for a in response.context["hardware"]] == ["PH-0007"]


@pytest.mark.django_db
def test_empty_states_are_explained(client):
    user = UserFactory(username="newbie")
    EmployeeFactory(user=user)
    client.force_login(user)
    html = client.get(HOME).content.decode()
    assert "You hold no hardware." in html
    assert "You have no access to any application yet." in html


@pytest.mark.django_db
def test_login_without_employee_record_gets_an_explanation(client):
    user = UserFactory(username="svc-account")
    client.force_login(user)
    response = client.get(HOME)
    assert response.status_code == 200
    html = response.content.decode()
    assert "No employee record linked" in html
    assert "ask the IT helpdesk to link your login" in html
    assert 'href="/admin/"' not in html


def test_staff_see_a_link_to_the_admin(client, it_admin):
    client.force_login(it_admin)
    html = client.get(HOME).content.decode()
    assert 'href="/admin/"' in html


def test_non_staff_employee_has_no_admin_link(client, erin):
    client.force_login(erin.user)
    assert 'href="/admin/"' not in client.get(HOME).content.decode()


@pytest.mark.parametrize("size", [1, 12])
@pytest.mark.django_db
def test_home_query_count_is_constant(client, django_assert_num_queries, size):
    """Session, user, employee, entitlements, hardware, what needs them: six queries however much one holds."""
    user = UserFactory(username=f"holder{size}")
    employee = EmployeeFactory(user=user, manager=EmployeeFactory())
    give_access(employee, count=size)
    give_hardware(employee, count=size, terms_accepted=size % 2 == 0)
    client.force_login(user)
    with django_assert_num_queries(6):
        response = client.get(HOME)
    assert len(response.context["entitlements"]) == size
    assert len(response.context["hardware"]) == size


# --- Error pages ----------------------------------------------------------------------------


def test_unknown_address_gets_the_portal_404_page(client, erin):
    client.force_login(erin.user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_server_error_page_renders_without_a_request_context(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


# --- The admin is for staff only ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/accounts/employee/", "/admin/assets/hardwareasset/"])
def test_non_staff_employee_is_sent_to_admin_login(client, erin, path):
    client.force_login(erin.user)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_employee_cannot_sign_in_to_admin(client, erin, password):
    response = client.post("/admin/login/", {"username": "erin", "password": password, "next": "/admin/"})
    assert response.status_code == 200
    assert "Please enter the correct username and password for a staff account" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_staff_can_open_the_admin(client, it_admin):
    client.force_login(it_admin)
    assert client.get("/admin/").status_code == 200


# --- `manage.py serve`: web, worker and the demo's target systems together, stopped together ------


def _free_port() -> int:
    """A free port whose next two (the demo targets' SCIM and webhook ports) are free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65000 and not any(_listening(port + n) for n in (1, 2)):
            return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_adds_the_demo_targets_next_to_the_web_port():
    from portal.management.commands.serve import companion_commands

    assert companion_commands("127.0.0.1:8100") == {
        "demo targets": ["demo_targets", "--scim-port", "8101", "--webhook-port", "8102"]
    }
    assert companion_commands("8000")["demo targets"][2::2] == ["8001", "8002"]


def _children_of(pids: set[int]) -> set[int]:
    """Every live descendant of `pids`, from /proc."""
    found, frontier = set(), set(pids)
    while frontier:
        parents, frontier = frontier, set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if ppid in parents and pid not in found:
                found.add(pid)
                frontier.add(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
def test_serve_runs_web_worker_and_demo_targets_and_ctrl_c_stops_them_all(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env |= {"SQLITE_PATH": str(tmp_path / "serve.sqlite3"), "Q_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, capture_output=True, timeout=300)

    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [*manage, "serve", f"127.0.0.1:{port}", "--noreload"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.3)
        # The demo's target systems on the web port + 1 (SCIM) and + 2 (webhook).
        scim, hook = None, None
        while time.monotonic() < deadline and (scim is None or hook is None):
            try:
                url = f"http://127.0.0.1:{port + 1}/directory/v2/ServiceProviderConfig"
                with urllib.request.urlopen(url, timeout=2) as response:
                    scim = json.loads(response.read())
                hook = _post_status(f"http://127.0.0.1:{port + 2}/hooks/portal")
            except OSError:
                time.sleep(0.3)
        # runserver, qcluster and qcluster's own processes, demo_targets; the cluster forks its workers later.
        children = _children_of({proc.pid})
        while time.monotonic() < deadline and len(children) < 4:
            time.sleep(0.3)
            children = _children_of({proc.pid})
        log.seek(0)
        output = log.read()
        assert status == 200, output
        assert scim is not None and scim["patch"]["supported"] is True, output
        assert hook == 401, "the webhook receiver refuses an unsigned call"
        assert len(children) >= 4, output
        assert "demo targets (pid" in output

        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to `make run`
        assert proc.wait(timeout=30) == 0
        time.sleep(0.5)
        assert not [pid for pid in children if _alive(pid)], "serve left processes behind"
        assert not any(_listening(port + n) for n in (0, 1, 2)), "a port is still served"
        log.seek(0)
        assert "Portal: web server, task worker, demo targets stopped." in log.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def _post_status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
