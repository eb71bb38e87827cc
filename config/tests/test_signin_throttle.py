"""Sign-in throttling on both login pages: a lock after repeated failures (per username, per address),
refused even with the right password, one audit event per lock, reset on success, lifted after the cool-off."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.utils import timezone

from accounts.tests.factories import UserFactory
from portal import signin
from portal.models import AuditEvent
from portal.testing.assertions import nothing_written

ACCOUNT_LOCKED = "Too many failed sign-ins for this account. Try again in 15 minutes, or ask IT to unlock it."
ADDRESS_LOCKED = "Too many failed sign-ins from your network address. Try again in 15 minutes, or ask IT to unlock it."
PAGES = ["/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def clean_cache():
    """Counts and locks live in the (process-wide) local-memory cache: start and leave it empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def someone(groups):
    """A staff user, so the same account can sign in on both pages."""
    return UserFactory(username="sam", is_staff=True)


def sign_in(client, page, username, password, address="127.0.0.1"):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def fail(client, page, username, times, address="127.0.0.1"):
    for _ in range(times):
        assert not signed_in(sign_in(client, page, username, "wrong", address))


def locks():
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_LOCKED))


@pytest.mark.parametrize("page", PAGES)
def test_five_wrong_passwords_then_the_right_one_is_refused_with_the_message(client, someone, password, page):
    fail(client, page, "sam", 4)
    fifth = sign_in(client, page, "sam", "wrong")
    assert ACCOUNT_LOCKED in fifth.content.decode()

    response = sign_in(client, page, "sam", password)

    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated
    assert ACCOUNT_LOCKED in response.content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_a_lock_writes_exactly_one_audit_event_on_the_user(client, someone, password, page):
    fail(client, page, "sam", 4)
    assert locks() == []

    fail(client, page, "sam", 3)
    sign_in(client, page, "sam", password)

    [event] = locks()
    assert (event.target_type, event.target_id) == (get_user_model()._meta.label, str(someone.pk))
    assert event.actor is None
    assert event.detail["locked"] == "username"
    assert event.detail["failures"] == 5
    assert event.detail["address"] == "127.0.0.1"


@pytest.mark.parametrize("page", PAGES)
def test_a_refused_attempt_writes_nothing(client, someone, password, page):
    fail(client, page, "sam", 5)
    someone.refresh_from_db()
    sessions = Session.objects.count()

    with nothing_written():
        response = sign_in(client, page, "sam", password)

    assert ACCOUNT_LOCKED in response.content.decode()
    assert Session.objects.count() == sessions
    assert "_auth_user_id" not in client.session
    assert get_user_model().objects.get(pk=someone.pk).last_login == someone.last_login


@pytest.mark.parametrize("page", PAGES)
def test_a_success_before_the_limit_resets_the_count(client, someone, password, page):
    fail(client, page, "sam", 4)
    assert signed_in(sign_in(client, page, "sam", password))
    client.logout()

    fail(client, page, "sam", 4)
    assert signed_in(sign_in(client, page, "sam", password))
    assert locks() == []


@pytest.mark.parametrize("page", PAGES)
def test_sign_in_works_again_after_the_cool_off(client, someone, password, page, monkeypatch):
    fail(client, page, "sam", 5)
    start = timezone.now()

    monkeypatch.setattr(signin, "_now", lambda: start + datetime.timedelta(minutes=14, seconds=30))
    response = sign_in(client, page, "sam", password)
    assert "Try again in 1 minute," in response.content.decode()

    monkeypatch.setattr(signin, "_now", lambda: start + datetime.timedelta(minutes=15, seconds=1))
    assert signed_in(sign_in(client, page, "sam", password))


def test_after_the_cool_off_the_whole_limit_applies_again_and_a_second_lock_is_a_second_event(
    client, someone, monkeypatch
):
    fail(client, "/login/", "sam", 5)
    later = timezone.now() + datetime.timedelta(minutes=16)
    monkeypatch.setattr(signin, "_now", lambda: later)

    fail(client, "/login/", "sam", 4)
    assert len(locks()) == 1
    assert ACCOUNT_LOCKED in sign_in(client, "/login/", "sam", "wrong").content.decode()
    assert len(locks()) == 2


@pytest.mark.parametrize("page", PAGES)
def test_another_user_is_not_affected_by_a_lock(client, someone, password, page):
    UserFactory(username="kim", is_staff=True)
    fail(client, page, "sam", 5, address="10.0.0.1")

    assert signed_in(sign_in(client, page, "kim", password, address="10.0.0.2"))
    client.logout()
    assert ACCOUNT_LOCKED in sign_in(client, page, "sam", password, address="10.0.0.2").content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_failures_from_one_address_lock_that_address_for_everyone(client, someone, password, page, settings):
    settings.SIGN_IN_THROTTLE = {**settings.SIGN_IN_THROTTLE, "ADDRESS_FAILURE_LIMIT": 5}
    for n in range(5):
        sign_in(client, page, f"nobody{n}", "wrong", address="10.0.0.9")

    assert ADDRESS_LOCKED in sign_in(client, page, "sam", password, address="10.0.0.9").content.decode()
    assert signed_in(sign_in(client, page, "sam", password, address="10.0.0.8"))
    # No account behind those usernames and no row for an address: throttled, but no audit event.
    assert locks() == []


def test_an_unknown_username_is_locked_too_without_an_audit_event(client, db):
    fail(client, "/login/", "ghost", 5)

    assert ACCOUNT_LOCKED in sign_in(client, "/login/", "ghost", "anything", address="10.0.0.3").content.decode()
    assert locks() == []


def test_the_username_is_matched_whatever_its_case(client, someone, password):
    fail(client, "/login/", "SAM", 5)

    assert ACCOUNT_LOCKED in sign_in(client, "/login/", "sam", password, address="10.0.0.4").content.decode()
    assert len(locks()) == 1


def test_it_can_unlock_an_account_and_an_address(client, someone, password):
    fail(client, "/login/", "sam", 5)

    signin.signin_unlock(username="sam", address="127.0.0.1")

    assert signed_in(sign_in(client, "/login/", "sam", password))


def test_the_limit_comes_from_settings(client, someone, password, settings):
    settings.SIGN_IN_THROTTLE = {**settings.SIGN_IN_THROTTLE, "FAILURE_LIMIT": 2}
    fail(client, "/login/", "sam", 2)

    assert ACCOUNT_LOCKED in sign_in(client, "/login/", "sam", password).content.decode()


def test_a_non_staff_user_with_the_right_password_on_the_admin_page_is_not_a_failure(client, db, password):
    UserFactory(username="pat")
    for _ in range(6):
        response = sign_in(client, "/admin/login/", "pat", password)
        assert "for a staff account" in response.content.decode()
    assert signed_in(sign_in(client, "/login/", "pat", password))


def test_one_address_has_a_higher_limit_than_one_username(client, someone, password):
    """People behind one office proxy share an address: five people mistyping once lock nobody out."""
    for n in range(5):
        sign_in(client, "/login/", f"colleague{n}", "wrong", address="10.0.0.7")

    assert signed_in(sign_in(client, "/login/", "sam", password, address="10.0.0.7"))


def test_it_unlocks_from_the_command_line(client, someone, password):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    fail(client, "/login/", "sam", 5)
    with pytest.raises(CommandError, match="Name what to unlock"):
        call_command("signin_unlock")

    call_command("signin_unlock", username="SAM")

    assert signed_in(sign_in(client, "/login/", "sam", password))
    [unlocked] = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN_UNLOCKED)
    assert (unlocked.target_id, unlocked.actor_repr) == (str(someone.pk), "system")


# --- The client's address behind a proxy ------------------------------------------------------------


def _request(remote, forwarded=None):
    from django.test import RequestFactory

    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/login/", **extra)


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.5", "198.51.100.7", "203.0.113.5"),  # no proxy configured: the header is ignored
        (["10.0.0.1"], "203.0.113.5", "198.51.100.7", "203.0.113.5"),  # not from the proxy: ignored
        (["10.0.0.1"], "10.0.0.1", "198.51.100.7", "198.51.100.7"),  # from the proxy: its client
        (["10.0.0.0/8"], "10.0.0.1", "1.2.3.4, 198.51.100.7, 10.0.0.2", "198.51.100.7"),  # forged hop on the left
        (["10.0.0.1"], "10.0.0.1", None, "10.0.0.1"),  # the proxy itself, no header
        (["10.0.0.1"], "10.0.0.1", "not-an-address", "10.0.0.1"),  # garbage: the proxy's address
    ],
)
def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(settings, trusted, remote, forwarded, expected):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network(t) for t in trusted]
    assert signin.client_address(_request(remote, forwarded)) == expected


@pytest.mark.parametrize("page", PAGES)
def test_a_forged_header_does_not_dodge_the_address_lock(client, someone, password, page, settings):
    """Without a trusted proxy, a client that sends a new X-Forwarded-For on each try is still one address."""
    settings.SIGN_IN_THROTTLE = {**settings.SIGN_IN_THROTTLE, "ADDRESS_FAILURE_LIMIT": 3}
    for n in range(3):
        client.post(
            page,
            {"username": f"nobody{n}", "password": "wrong"},
            REMOTE_ADDR="203.0.113.5",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
    response = client.post(
        page, {"username": "sam", "password": password}, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="192.0.2.1"
    )
    assert ADDRESS_LOCKED in response.content.decode()


def test_a_bad_trusted_proxies_setting_stops_start_up():
    from django.core.exceptions import ImproperlyConfigured

    from config.settings import trusted_proxies

    assert [str(n) for n in trusted_proxies(" 10.0.0.1, 10.1.0.0/16 ")] == ["10.0.0.1/32", "10.1.0.0/16"]
    with pytest.raises(ImproperlyConfigured, match="PORTAL_TRUSTED_PROXIES must be addresses or networks"):
        trusted_proxies("10.0.0.1, proxy.internal")
