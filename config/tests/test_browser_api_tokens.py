"""The API tokens page in a real Chromium at phone width: make a token, see its secret once, use it,
revoke it; nothing scrolls sideways."""

import re

import pytest
from django.test import Client

from api.models import ApiToken
from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in

pytestmark = pytest.mark.browser


def test_an_employee_makes_uses_and_revokes_a_token_on_a_phone(live_server, new_page, cast, password):
    page = new_page(PHONE)
    sign_in(page, f"{live_server.url}/api/tokens/", cast.employee.user.username, password)
    assert page.get_by_role("heading", name="API tokens").is_visible()
    assert page.get_by_text("You have no API tokens.").is_visible()

    page.get_by_label("Name").fill("nightly HR sync")
    page.get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Make a token").click()
    secret = page.locator(".token-secret").inner_text().strip()
    assert re.fullmatch(r"portal_\S{20,}", secret), secret
    scroll_width, inner_width = no_horizontal_overflow(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "api-tokens-phone.png", full_page=True)
    assert scroll_width <= inner_width, f"the tokens page scrolls sideways at {inner_width}px: {scroll_width}px"
    assert page.get_by_role("cell", name="nightly HR sync").is_visible()

    # The secret works as shown, and only its hash is kept.
    me = Client().get("/api/v1/me/", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["username"] == cast.employee.user.username
    token = ApiToken.objects.get(user=cast.employee.user)
    assert secret not in str(ApiToken.objects.filter(pk=token.pk).values().get())

    # Shown once: the page opened again lists the token without its secret.
    page.goto(f"{live_server.url}/api/tokens/")
    assert page.locator(".token-secret").count() == 0
    page.get_by_role("button", name="Revoke the token nightly HR sync").click()
    assert "is revoked; requests with it now answer 401" in page.get_by_role("status").inner_text()
    assert page.get_by_text(re.compile(r"Revoked \d+ \w+ \d{4}")).is_visible()
    assert Client().get("/api/v1/me/", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
