"""Links in emails point at the address Portal is served at: `manage.py serve HOST:PORT` (`make run PORT=8100`)
hands `PORTAL_BASE_URL=http://HOST:PORT` to its web server and worker, unless the environment sets one."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from portal.management.commands.serve import child_env, served_base_url

BASE_DIR = Path(__file__).resolve().parents[2]
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TMPDIR")

RENDER = """
import json, django
django.setup()
from portal.mail import email_render, portal_url
subject, body, html = email_render(template="access_expiring", context={
    "employee": {"first_name": "Erin"}, "entitlement": {"application": {"name": "GitHub"}},
    "url": portal_url("access:request")})
print(json.dumps({"body": body, "home": email_render(template="task_overdue", html=True,
    context={"for_it": False, "recipient_name": "Erin", "items": []})[2]}))
"""


@pytest.mark.parametrize(
    ("addrport", "expected"),
    [
        ("8100", "http://127.0.0.1:8100"),
        ("127.0.0.1:8100", "http://127.0.0.1:8100"),
        ("localhost:8100", "http://localhost:8100"),
        ("[::1]:8100", "http://[::1]:8100"),
        ("0.0.0.0:8100", f"http://{socket.getfqdn()}:8100"),
    ],
)
def test_the_served_address_is_the_base_url(addrport, expected):
    assert served_base_url(addrport) == expected


@pytest.mark.parametrize("addrport", ["", "http://127.0.0.1:8100", "127.0.0.1:99999", "127.0.0.1:", "host:port"])
def test_an_unreadable_address_is_refused_in_plain_words(addrport):
    with pytest.raises(CommandError, match=r"Give the address as PORT or HOST:PORT \(e\.g\. 127\.0\.0\.1:8000\)"):
        served_base_url(addrport)


def test_the_children_get_the_served_address_unless_the_environment_sets_one():
    assert child_env("127.0.0.1:8100", {"PATH": "/bin"}) == {"PATH": "/bin", "PORTAL_BASE_URL": "http://127.0.0.1:8100"}
    assert child_env("8100", {"PORTAL_BASE_URL": " "})["PORTAL_BASE_URL"] == "http://127.0.0.1:8100"
    public = {"PORTAL_BASE_URL": "https://portal.example.com"}
    assert child_env("127.0.0.1:8100", public)["PORTAL_BASE_URL"] == "https://portal.example.com"


def _render_in(env: dict[str, str], tmp_path: Path) -> dict:
    """Render two emails in a fresh interpreter started with `env`, as serve starts its web server and worker."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings", "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", RENDER], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _clean_environment() -> dict[str, str]:
    return {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}


def test_an_email_rendered_under_make_run_port_8100_links_to_port_8100(tmp_path):
    rendered = _render_in(child_env("127.0.0.1:8100", _clean_environment()), tmp_path)
    assert "http://127.0.0.1:8100/access/request/" in rendered["body"]
    assert 'href="http://127.0.0.1:8100/"' in rendered["home"]
    assert ":8000" not in rendered["body"] + rendered["home"]


def test_a_base_url_set_in_the_environment_wins_over_the_served_address(tmp_path):
    env = child_env("127.0.0.1:8100", {**_clean_environment(), "PORTAL_BASE_URL": "https://portal.example.com"})
    rendered = _render_in(env, tmp_path)
    assert "https://portal.example.com/access/request/" in rendered["body"]
    assert ":8100" not in rendered["body"]


def test_a_malformed_base_url_is_refused_at_start_up(tmp_path):
    env = {**_clean_environment(), "PORTAL_BASE_URL": "portal.example.com", "SQLITE_PATH": str(tmp_path / "db")}
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", "import config.settings"], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PORTAL_BASE_URL must be an http:// or https:// address, not 'portal.example.com'" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a child's environment from /proc (Linux)")
def test_manage_py_serve_hands_the_served_address_to_its_web_server_and_worker(tmp_path):
    """The real command: both children it starts run with PORTAL_BASE_URL naming the port it serves."""
    import re
    import signal
    import time

    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**_clean_environment(), "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        serve = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--noreload", "--grace", "5"],
            cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"\(pid (\d+)\) and task worker \(pid (\d+)\)", log.read_text())):
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        for pid in map(int, found.groups()):
            assert _environ_of(pid)["PORTAL_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert f"links in emails start with http://127.0.0.1:{port}" in log.read_text()
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
