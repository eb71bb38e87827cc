"""A throwaway OpenLDAP `slapd` for tests: real directory, loopback port, temporary files.

    from portal.testing.ldap_server import LdapServer, slapd_missing_reason

    with LdapServer() as ldap:                   # starts slapd on a free 127.0.0.1 port
        config = ldap.connector_config()         # an LDAP Application.connector_config, groups created
        ...                                      # provision through the connector
        ldap.entry("uid=ada,ou=people,dc=example,dc=com")   # {"mail": ["ada@..."], ...} or None
        ldap.members(config["groups"]["user"])   # {"uid=ada,ou=people,dc=example,dc=com"}
        ldap.reset()                             # empty ou=people and ou=groups between tests

The directory: suffix `dc=example,dc=com`, `ou=people` and `ou=groups` under it, the MDB
backend in a temporary directory, the core, cosine, inetorgperson and nis schemas, and the
root DN `cn=admin,dc=example,dc=com` (password `LdapServer.admin_password`) which may do
everything. Groups are `groupOfNames`; as that object class needs at least one `member`,
`add_group` creates them with the admin DN as a placeholder member, which `members()` leaves out.

pytest: the root `conftest.py` has a session-scoped `ldap_server` fixture (one slapd for the
whole run; skipped with the reason from `slapd_missing_reason()` unless PORTAL_REQUIRE_LDAP=1)
and a function-scoped `ldap_directory` fixture that also empties the directory first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SLAPD = os.environ.get("PORTAL_SLAPD", "/usr/sbin/slapd")
SCHEMA_DIR = Path(os.environ.get("PORTAL_LDAP_SCHEMA_DIR", "/etc/ldap/schema"))
MODULE_DIR = Path(os.environ.get("PORTAL_LDAP_MODULE_DIR", "/usr/lib/ldap"))
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def slapd_missing_reason() -> str:
    """Why a slapd cannot be started here, or "" when it can."""
    if not os.access(SLAPD, os.X_OK):
        return f"OpenLDAP slapd is not installed at {SLAPD} (Debian: apt-get install slapd ldap-utils)."
    missing = [name for name in SCHEMAS if not (SCHEMA_DIR / f"{name}.schema").exists()]
    if missing:
        return f"OpenLDAP schema files {', '.join(missing)} are missing from {SCHEMA_DIR}."
    return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller should retry if it is taken by then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LdapServer:
    """One slapd process and its temporary files; a context manager (`start()` / `stop()` also work)."""

    base_dn = "dc=example,dc=com"
    people_dn = "ou=people,dc=example,dc=com"
    groups_dn = "ou=groups,dc=example,dc=com"
    admin_dn = "cn=admin,dc=example,dc=com"
    admin_password = "portal-test-admin"

    def __init__(self, *, host: str = "127.0.0.1", start_timeout: float = 15.0):
        self.host = host
        self.port: int | None = None
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.tmpdir: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("The LDAP server is not started.")
        return f"ldap://{self.host}:{self.port}"

    def __enter__(self) -> LdapServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LdapServer:
        """Start slapd and create the base entries. Raises RuntimeError with slapd's log if it cannot."""
        reason = slapd_missing_reason()
        if reason:
            raise RuntimeError(reason)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="portal-slapd-"))
        (self.tmpdir / "data").mkdir()
        (self.tmpdir / "slapd.conf").write_text(self._config())
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between choosing and binding
            self.port = free_port(self.host)
            try:
                self._spawn()
                break
            except RuntimeError as exc:
                last_error = str(exc)
        else:
            self.stop()
            raise RuntimeError(last_error)
        atexit.register(self.stop)
        self._add_base_entries()
        return self

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL) and remove its files. Safe to call twice."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def _config(self) -> str:
        includes = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS)
        return f"""{includes}
pidfile {self.tmpdir / "slapd.pid"}
argsfile {self.tmpdir / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
database mdb
maxsize 67108864
suffix "{self.base_dn}"
rootdn "{self.admin_dn}"
rootpw {self.admin_password}
directory {self.tmpdir / "data"}
index objectClass eq
index uid,employeeNumber,member eq
"""

    def _spawn(self) -> None:
        log_path = self.tmpdir / "slapd.log"
        with log_path.open("ab") as log:
            # -d 0: stay in the foreground (so we own the process) without debug output.
            self.process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
                [SLAPD, "-f", str(self.tmpdir / "slapd.conf"), "-h", f"{self.url}/", "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_text = log_path.read_text(errors="replace")[-2000:]
                self.process = None
                raise RuntimeError(f"slapd exited at start on port {self.port}: {log_text}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None
        raise RuntimeError(f"slapd did not accept connections on {self.url} within {self.start_timeout}s.")

    # --- directory access --------------------------------------------------------------------
    def connection(self):
        """A new ldap3 connection bound as the admin (call `.unbind()` when done, or use `with`)."""
        import ldap3

        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server, self.admin_dn, self.admin_password, auto_bind=ldap3.AUTO_BIND_NO_TLS, receive_timeout=10
        )

    def _add_base_entries(self) -> None:
        with self.connection() as conn:
            conn.add(self.base_dn, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            conn.add(self.people_dn, ["organizationalUnit"], {"ou": "people"})
            conn.add(self.groups_dn, ["organizationalUnit"], {"ou": "groups"})

    def reset(self) -> None:
        """Delete every entry under ou=people and ou=groups (the OUs themselves stay)."""
        import ldap3

        with self.connection() as conn:
            for parent in (self.people_dn, self.groups_dn):
                conn.search(parent, "(objectClass=*)", ldap3.LEVEL, attributes=[])
                for entry in list(conn.entries):
                    conn.delete(entry.entry_dn)

    def add_group(self, cn: str) -> str:
        """Create `cn=<cn>,ou=groups,...` (groupOfNames, admin as placeholder member) if missing; its DN."""
        dn = f"cn={cn},{self.groups_dn}"
        with self.connection() as conn:
            conn.add(dn, ["groupOfNames"], {"cn": cn, "member": [self.admin_dn]})
            if conn.result["result"] not in (0, 68):  # 68: entryAlreadyExists
                problem = f"{conn.result['description']} {conn.result['message']}"
                raise RuntimeError(f"Could not create group {dn}: {problem}")
        return dn

    def connector_config(self, *, groups: dict[str, str] | None = None, **extra) -> dict:
        """An LDAP connector config for this server; creates the groups (level → group cn).

        Default groups: {"user": "app-users", "admin": "app-admins"}. `extra` is merged in
        (e.g. `on_revoke="delete_entry"`, `bind_password="wrong"`).
        """
        groups = groups if groups is not None else {"user": "app-users", "admin": "app-admins"}
        config = {
            "url": self.url,
            "bind_dn": self.admin_dn,
            "bind_password": self.admin_password,
            "users_dn": self.people_dn,
            "groups_dn": self.groups_dn,
            "groups": {level: self.add_group(cn) for level, cn in groups.items()},
            "timeout": 5,
        }
        config.update(extra)
        return config

    def entry(self, dn: str) -> dict[str, list[str]] | None:
        """The entry's attributes as {name: [values]} (strings), or None when it does not exist."""
        import ldap3

        with self.connection() as conn:
            if not conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[ldap3.ALL_ATTRIBUTES]):
                return None
            return {name: [str(v) for v in values] for name, values in conn.entries[0].entry_attributes_as_dict.items()}

    def people(self) -> list[str]:
        """The DNs of every entry directly under ou=people, sorted."""
        import ldap3

        with self.connection() as conn:
            conn.search(self.people_dn, "(objectClass=*)", ldap3.LEVEL, attributes=[])
            return sorted(entry.entry_dn for entry in conn.entries)

    def members(self, group_dn: str) -> set[str]:
        """The group's members, without the admin placeholder (empty when the group does not exist)."""
        entry = self.entry(group_dn) or {}
        return {m for m in entry.get("member", []) if m.lower() != self.admin_dn.lower()}
