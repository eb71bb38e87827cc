"""The API's docs and token page in a real Chromium, under Portal's Content-Security-Policy: Swagger UI loads
from Portal's own static files (drf-spectacular-sidecar, no CDN) and renders every resource, and a person
makes a token on /api/tokens/ that the API then accepts. `new_page` fails on any CSP violation."""

import pytest
from django.test import Client

from portal.testing.browser import ARTIFACTS, PHONE, no_horizontal_overflow, sign_in

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_the_api_under_the_csp_without_a_cdn(live_server, new_page):
    page = new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{live_server.url}/api/v1/docs/")
    page.get_by_text("Portal API").first.wait_for()
    for tag in ("employees", "access-requests", "hardware", "tasks"):
        assert page.locator(f"#operations-tag-{tag}").is_visible(), tag
    assert all(url.startswith(live_server.url) for url in requests), [u for u in requests if live_server.url not in u]
    page.screenshot(path=ARTIFACTS / "api-docs.png", full_page=False)


def test_a_person_makes_a_token_on_the_page_and_the_api_accepts_it(live_server, new_page, erin, password):
    page = new_page(viewport=PHONE)
    sign_in(page, f"{live_server.url}/api/tokens/", "erin", password)
    page.get_by_label("Name").fill("laptop script")
    page.get_by_role("button", name="Make a token").click()
    secret = page.locator(".token-secret").inner_text().strip()
    assert secret.startswith("portal_")
    assert no_horizontal_overflow(page)
    me = Client().get("/api/v1/me/", headers={"Authorization": f"Bearer {secret}"})
    assert (me.status_code, me.json()["username"]) == (200, "erin")
    page.get_by_role("button", name="Revoke the token laptop script").click()
    assert page.get_by_text("is revoked").is_visible()
    assert Client().get("/api/v1/me/", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
