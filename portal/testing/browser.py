"""A real headless Chromium for end-to-end tests (Debian's /usr/bin/chromium, driven by Playwright's sync API).

`chromium_browser()` skips with the reason when Chromium is missing, unless PORTAL_REQUIRE_BROWSER=1
(CI): then a missing browser is a failure. The conftest in `config/tests/` wraps it and `page_opener` as the
`browser` and `new_page` fixtures. Screenshots go to `ARTIFACTS` (test-artifacts/, gitignored).
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def browser_required() -> bool:
    """True when PORTAL_REQUIRE_BROWSER asks for a failure, not a skip, if Chromium is missing."""
    return os.environ.get("PORTAL_REQUIRE_BROWSER", "").lower() in {"1", "true", "yes"}


@contextlib.contextmanager
def chromium_browser() -> Iterator:
    """One headless Chromium, closed on exit; skips (or fails, see `browser_required`) when it is missing.

    Playwright's sync API keeps an asyncio loop running in this thread, which makes Django
    refuse ORM calls here as "async unsafe"; the tests' own ORM calls are plain synchronous
    setup, so the check is switched off while the browser runs, and restored afterwards.
    """
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}; install Debian's chromium package (apt-get install chromium)."
        if browser_required():
            pytest.fail(f"{message} PORTAL_REQUIRE_BROWSER=1, so this is a failure, not a skip.")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Every page reports each Content-Security-Policy violation it sees (a blocked script, style, image,
# form target...) to the test through an exposed function, before any of the page's own code runs.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__portalCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.documentURI}`
    + (e.sample ? `: ${e.sample}` : ""));
});
"""


@contextlib.contextmanager
def page_opener(browser) -> Iterator[Callable]:
    """A function opening a page in a fresh browser context (own cookies) with a viewport; all closed on exit.

    `open_page.csp_violations` lists every Content-Security-Policy violation any of its pages reported
    (the `securitypolicyviolation` event, and Chromium's console errors naming the policy).
    """
    contexts = []
    violations: list[str] = []

    def on_console(message):
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(f"console: {message.text}")

    def on_violation(text: str) -> None:
        violations.append(text)

    def open_page(viewport=DESKTOP):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(15_000)
        context.expose_function("__portalCspViolation", on_violation)
        context.add_init_script(_REPORT_CSP_VIOLATIONS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", on_console)
        return page

    open_page.csp_violations = violations
    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


def sign_in(page, url: str, username: str, password: str) -> None:
    """Open `url` (a login page, or a page that redirects to one), fill in the credentials and submit."""
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").or_(page.get_by_role("button", name="Log in")).click()
    page.wait_for_load_state()


def sign_in_staff(page, url: str, user, password: str) -> None:
    """`sign_in`, then the second factor: a code from the user's test authenticator app (see `portal.testing.mfa`)."""
    from portal.testing.mfa import authenticator_for_tests, totp_code

    device = authenticator_for_tests(user)
    sign_in(page, url, user.get_username(), password)
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()


def no_horizontal_overflow(page) -> tuple[int, int]:
    """The page's scroll width and the window's inner width: the first above the second scrolls sideways."""
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
