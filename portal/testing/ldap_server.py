"""A throwaway OpenLDAP `slapd` for tests: real directory, loopback port, temporary files.

    from portal.testing.ldap_server import LdapServer, slapd_missing_reason

    with LdapServer() as ldap:                   # starts slapd on a free 127.0.0.1 port
        config = ldap.connector_config()         # an LDAP Application.connector_config, groups created
        ...                                      # provision through the connector
        ldap.entry("uid=ada,ou=people,dc=example,dc=com")   # {"mail": ["ada@..."], ...} or None
        ldap.members(config["groups"]["user"])   # {"uid=ada,ou=people,dc=example,dc=com"}
        ldap.reset()                             # empty ou=people and ou=groups between tests

        ldap.calls                               # every operation Portal sent (LdapCall: op, dn, result)
        ldap.effects()                           # every change slapd applied for Portal (LdapEffect: op, dn)
        ldap.hold(op="modify", dn=group_dn)      # slapd applies the next such change; its answer is withheld
        ldap.wait_held(timeout=10)               # ... until the test calls ldap.release() (or kills the client)
        ldap.drop_connections()                  # close every client connection (a restart, a firewall)

The directory: suffix `dc=example,dc=com`, `ou=people` and `ou=groups` under it, the MDB
backend in a temporary directory, the core, cosine, inetorgperson and nis schemas, and the
root DN `cn=admin,dc=example,dc=com` (password `LdapServer.admin_password`) which may do
everything. Groups are `groupOfNames`; as that object class needs at least one `member`,
`add_group` creates them with the admin DN as a placeholder member, which `members()` leaves out.

Portal talks to a front door, not to slapd itself: `url` (what `connector_config()` hands out)
is a small TCP proxy in this process that forwards every byte both ways and, on the side,
splits the stream into LDAP messages (BER framing, RFC 4511) to record each operation it
carries (`calls`) and slapd's result code for it. It can withhold the answer to one chosen
change after slapd applied it (`hold`), which is how a test kills a worker while its LDAP call
is in flight. The test's own reads (`entry`, `members`, `people`) and set-up go to slapd
directly (`direct_url`), so they are not counted.

What slapd applied is counted by slapd: the `auditlog` overlay writes every change it commits
(and nothing it refused) as LDIF, naming the client's address. The proxy connects to slapd
from 127.0.0.2, so `effects()` is exactly the changes made through the front door since the
last `reset()`. A change re-sent but absorbed (the connector reads first and finds nothing to
do, or slapd answers attributeOrValueExists) is a call without an effect.

pytest: the root `conftest.py` has a session-scoped `ldap_server` fixture (one slapd for the
whole run; skipped with the reason from `slapd_missing_reason()` unless PORTAL_REQUIRE_LDAP=1)
and a function-scoped `ldap_directory` fixture that also empties the directory first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SLAPD = os.environ.get("PORTAL_SLAPD", "/usr/sbin/slapd")
SCHEMA_DIR = Path(os.environ.get("PORTAL_LDAP_SCHEMA_DIR", "/etc/ldap/schema"))
MODULE_DIR = Path(os.environ.get("PORTAL_LDAP_MODULE_DIR", "/usr/lib/ldap"))
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
# The proxy reaches slapd from this loopback address, so the audit log tells its changes apart.
PROXY_SOURCE = "127.0.0.2"


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
        self.port: int | None = None  # the front door (the proxy) Portal is given
        self.slapd_port: int | None = None  # slapd itself
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.tmpdir: Path | None = None
        self.proxy: LdapProxy | None = None
        self._audit_offset = 0

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The address Portal's connector uses: the counting proxy in front of slapd."""
        if self.port is None:
            raise RuntimeError("The LDAP server is not started.")
        return f"ldap://{self.host}:{self.port}"

    @property
    def direct_url(self) -> str:
        """slapd itself, bypassing the proxy (the test's own reads and set-up)."""
        if self.slapd_port is None:
            raise RuntimeError("The LDAP server is not started.")
        return f"ldap://{self.host}:{self.slapd_port}"

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
            self.slapd_port = free_port(self.host)
            try:
                self._spawn()
                break
            except RuntimeError as exc:
                last_error = str(exc)
        else:
            self.stop()
            raise RuntimeError(last_error)
        atexit.register(self.stop)
        self.proxy = LdapProxy(listen=(self.host, 0), upstream=(self.host, self.slapd_port)).start()
        self.port = self.proxy.port
        self._add_base_entries()
        return self

    def stop(self) -> None:
        """Stop the proxy and slapd (SIGTERM, then SIGKILL) and remove its files. Safe to call twice."""
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
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
moduleload auditlog
database mdb
maxsize 67108864
suffix "{self.base_dn}"
rootdn "{self.admin_dn}"
rootpw {self.admin_password}
directory {self.tmpdir / "data"}
index objectClass eq
index uid,employeeNumber,member eq
overlay auditlog
auditlog {self.audit_path}
"""

    @property
    def audit_path(self) -> Path:
        return self.tmpdir / "audit.ldif"

    def _spawn(self) -> None:
        log_path = self.tmpdir / "slapd.log"
        with log_path.open("ab") as log:
            # -d 0: stay in the foreground (so we own the process) without debug output.
            self.process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
                [SLAPD, "-f", str(self.tmpdir / "slapd.conf"), "-h", f"{self.direct_url}/", "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_text = log_path.read_text(errors="replace")[-2000:]
                self.process = None
                raise RuntimeError(f"slapd exited at start on port {self.slapd_port}: {log_text}")
            try:
                with socket.create_connection((self.host, self.slapd_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None
        raise RuntimeError(f"slapd did not accept connections on {self.direct_url} within {self.start_timeout}s.")

    # --- directory access --------------------------------------------------------------------
    def connection(self):
        """A new ldap3 connection to slapd itself (not counted), bound as the admin (use `with`)."""
        import ldap3

        server = ldap3.Server(self.direct_url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server, self.admin_dn, self.admin_password, auto_bind=ldap3.AUTO_BIND_NO_TLS, receive_timeout=10
        )

    def _add_base_entries(self) -> None:
        with self.connection() as conn:
            conn.add(self.base_dn, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            conn.add(self.people_dn, ["organizationalUnit"], {"ou": "people"})
            conn.add(self.groups_dn, ["organizationalUnit"], {"ou": "groups"})

    def reset(self) -> None:
        """Delete every entry under ou=people and ou=groups (the OUs themselves stay); forget the
        calls and effects counted so far and release a held answer."""
        import ldap3

        if self.proxy is not None:
            self.proxy.reset()

        with self.connection() as conn:
            for parent in (self.people_dn, self.groups_dn):
                conn.search(parent, "(objectClass=*)", ldap3.LEVEL, attributes=[])
                for entry in list(conn.entries):
                    conn.delete(entry.entry_dn)
        self._audit_offset = self.audit_path.stat().st_size if self.audit_path.exists() else 0

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

    # --- what the peer received and applied ---------------------------------------------------------
    @property
    def calls(self) -> list[LdapCall]:
        """Every operation received through the front door since `reset()`, in order (a copy)."""
        return self.proxy.calls if self.proxy is not None else []

    def calls_for(self, *, op: str | None = None, dn: str | None = None) -> list[LdapCall]:
        """The calls of operation `op` (e.g. "modify", "search") naming `dn` (case and spaces ignored)."""
        return [c for c in self.calls if (op is None or c.op == op) and (dn is None or _same_dn(c.dn, dn))]

    def effects(self, *, dn: str | None = None) -> list[LdapEffect]:
        """The changes slapd applied for requests that came through the front door since `reset()`,
        from slapd's own audit log (a refused change is not there); only those to `dn` if given."""
        if self.tmpdir is None or not self.audit_path.exists():
            return []
        with self.audit_path.open("rb") as log:
            log.seek(self._audit_offset)
            text = log.read().decode(errors="replace")
        found = [e for e in parse_audit_log(text) if e.client_address == PROXY_SOURCE]
        return [e for e in found if dn is None or _same_dn(e.dn, dn)]

    def hold(self, *, op: str = "modify", dn: str | None = None, count: int = 1) -> None:
        """Withhold slapd's answer to the next `count` successful `op` requests naming `dn` (any if
        None): slapd applies the change, the client waits for the answer until `release()`."""
        self.proxy.hold(op=op, dn=dn, count=count)

    def wait_held(self, *, timeout: float = 10) -> LdapCall:
        """Block until an answer is being withheld; the call it answers. RuntimeError after `timeout`."""
        return self.proxy.wait_held(timeout=timeout)

    def release(self) -> None:
        """Send every withheld answer on (to a client that may be gone) and disarm the hold."""
        if self.proxy is not None:
            self.proxy.release()

    def drop_connections(self) -> int:
        """Close every client connection open at the front door (as a server restart or a firewall
        dropping idle connections would); new connections are accepted as before. How many."""
        return self.proxy.drop_connections() if self.proxy is not None else 0


def _same_dn(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


# --- The front door: a counting, holding TCP proxy speaking just enough BER ---------------------------

# Protocol operation tags (RFC 4511, [APPLICATION n]) of requests, and the final answer of each.
REQUEST_OPS = {
    0x60: "bind",
    0x42: "unbind",
    0x63: "search",
    0x66: "modify",
    0x68: "add",
    0x4A: "delete",
    0x6C: "modrdn",
    0x6E: "compare",
    0x50: "abandon",
    0x77: "extended",
}
FINAL_RESPONSES = {0x61, 0x65, 0x67, 0x69, 0x6B, 0x6D, 0x6F, 0x78}
WRITE_OPS = ("add", "modify", "delete", "modrdn")


@dataclass
class LdapCall:
    """One LDAP operation as the front door received it, and slapd's answer."""

    op: str  # "bind", "search", "modify", "add", "delete", ...
    dn: str  # the DN it names: the bind name, the search base, the entry changed
    message_id: int
    connection: int  # the proxy's number for the client connection
    result: int | None = None  # slapd's result code (None: no final answer yet)
    held: bool = False  # its answer was withheld (see `LdapServer.hold`)
    delivered: bool = False  # the answer was passed on to the client
    received_at: float = field(default_factory=time.time)

    @property
    def is_write(self) -> bool:
        return self.op in WRITE_OPS


@dataclass(frozen=True)
class LdapEffect:
    """One change slapd applied, as its audit log records it."""

    op: str  # "add", "modify", "delete", "modrdn"
    dn: str
    client_address: str  # the client's IP as slapd saw it (PROXY_SOURCE: through the front door)
    lines: tuple[str, ...]  # the LDIF lines of the change (attribute operations, without slapd's own)


_AUDIT_HEAD = re.compile(r"^# (add|modify|delete|modrdn) \d+ .* IP=(\S+?):\d+ conn=\d+$")
_OPERATIONAL = ("entryCSN", "modifiersName", "modifyTimestamp")


def parse_audit_log(text: str) -> list[LdapEffect]:
    """The changes in an auditlog overlay's LDIF (each between `# <op> ...` and `# end <op> ...`)."""
    effects = []
    current: tuple[str, str] | None = None
    body: list[str] = []
    for line in text.splitlines():
        head = _AUDIT_HEAD.match(line)
        if head:
            current, body = (head.group(1), head.group(2)), []
        elif current is not None and line.startswith("# end "):
            dn = next((b.split(":", 1)[1].strip() for b in body if b.startswith("dn:")), "")
            if body and body[0].startswith("dn::"):  # base64 (non-ASCII DN)
                import base64

                dn = base64.b64decode(body[0][4:].strip()).decode(errors="replace")
            kept = [b for b in body[1:] if not b.startswith("changetype:") and not b.startswith(_OPERATIONAL)]
            kept = [b for b in kept if b != "-" and not any(b == f"replace: {name}" for name in _OPERATIONAL)]
            effects.append(LdapEffect(op=current[0], dn=dn, client_address=current[1], lines=tuple(kept)))
            current = None
        elif current is not None:
            body.append(line)
    return effects


def _ber_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """(length, position after the length octets) of the TLV whose length starts at `pos`."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if pos + 1 + count > len(data):
        return None
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _ber_frame(buffer: bytes) -> int:
    """The size of the first complete BER element in `buffer`, or 0 while it is incomplete."""
    parsed = _ber_length(buffer, 1)
    if parsed is None:
        return 0
    length, start = parsed
    return start + length if len(buffer) >= start + length else 0


def _ber_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at `pos`."""
    length, start = _ber_length(data, pos + 1)
    return data[pos], start, start + length


def parse_message(message: bytes) -> tuple[int, int, bytes]:
    """(message id, protocol operation tag, operation content) of one LDAPMessage."""
    _seq, start, _end = _ber_tlv(message, 0)
    _int, id_start, id_end = _ber_tlv(message, start)
    message_id = int.from_bytes(message[id_start:id_end], "big", signed=True)
    tag, op_start, op_end = _ber_tlv(message, id_end)
    return message_id, tag, message[op_start:op_end]


def _request_dn(tag: int, content: bytes) -> str:
    if tag == 0x4A:  # DelRequest ::= [APPLICATION 10] LDAPDN: the content is the DN
        return content.decode(errors="replace")
    pos = 0
    if tag == 0x60:  # BindRequest: version INTEGER first, then the name
        _t, _s, pos = _ber_tlv(content, 0)
    if tag in (0x60, 0x63, 0x66, 0x68, 0x6C, 0x6E) and pos < len(content):
        _t, start, end = _ber_tlv(content, pos)
        return content[start:end].decode(errors="replace")
    return ""


def _result_code(content: bytes) -> int | None:
    if not content or content[0] != 0x0A:  # LDAPResult starts with resultCode ENUMERATED
        return None
    _t, start, end = _ber_tlv(content, 0)
    return int.from_bytes(content[start:end], "big")


class LdapProxy:
    """A TCP proxy for LDAP on loopback: forwards each message whole, records requests and results,
    and can withhold one kind of answer. Threads: one acceptor, two pumps per connection."""

    def __init__(self, *, listen: tuple[str, int], upstream: tuple[str, int], hold_timeout: float = 120):
        self.listen = listen
        self.upstream = upstream
        self.hold_timeout = hold_timeout
        self.port: int | None = None
        self._calls: list[LdapCall] = []
        self._pending: dict[tuple[int, int], LdapCall] = {}
        self._lock = threading.Lock()
        self._hold: tuple[str, str | None] | None = None
        self._hold_count = 0
        self._held = threading.Event()
        self._held_call: LdapCall | None = None
        self._release = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._connections = 0

    def start(self) -> LdapProxy:
        self._listener = socket.create_server(self.listen)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="ldap-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    # --- what tests use ----------------------------------------------------------------------
    @property
    def calls(self) -> list[LdapCall]:
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        self.release()
        with self._lock:
            self._calls.clear()
            self._pending.clear()

    def hold(self, *, op: str, dn: str | None, count: int = 1) -> None:
        with self._lock:
            self._hold, self._hold_count = (op, dn), count
            self._held.clear()
            self._release.clear()
            self._held_call = None

    def wait_held(self, *, timeout: float) -> LdapCall:
        if not self._held.wait(timeout):
            raise RuntimeError(f"No LDAP answer matching {self._hold} was withheld within {timeout}s.")
        return self._held_call

    def release(self) -> None:
        with self._lock:
            self._hold, self._hold_count = None, 0
        self._release.set()

    def drop_connections(self) -> int:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        return len(sockets) // 2  # a client socket and its upstream socket each

    # --- plumbing -------------------------------------------------------------------------------
    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                server.bind((PROXY_SOURCE, 0))
                server.connect(self.upstream)
                # As slapd does on its own sockets: an answer of several messages (a search's entry,
                # then its result) leaves in several writes, and with Nagle's algorithm on, each write
                # after the first waits for the client's delayed ACK (~40 ms): a found entry would
                # cost 44 ms through the front door against 0.5 ms from slapd itself.
                for sock in (client, server):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, number, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, number, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, number: int, requests: bool) -> None:
        buffer = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                buffer += data
                while (size := _ber_frame(buffer)) and size <= len(buffer):
                    message, buffer = buffer[:size], buffer[size:]
                    if requests:
                        self._record(message, number)
                        target.sendall(message)
                        continue
                    call = self._answer(message, number)
                    if call is not None:
                        self._maybe_hold(call)  # blocks while the answer is withheld
                    target.sendall(message)
                    if call is not None:
                        call.delivered = True
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(target)

    def _record(self, message: bytes, number: int) -> None:
        """Note one request (its operation and DN) until its final answer comes."""
        try:
            message_id, tag, content = parse_message(message)
            dn = _request_dn(tag, content)
        except (TypeError, IndexError):
            return
        call = LdapCall(op=REQUEST_OPS.get(tag, f"0x{tag:02x}"), dn=dn, message_id=message_id, connection=number)
        with self._lock:
            self._calls.append(call)
            self._pending[(number, message_id)] = call

    def _answer(self, message: bytes, number: int) -> LdapCall | None:
        """The call a final answer completes (its result recorded), or None for other messages."""
        try:
            message_id, tag, content = parse_message(message)
        except (TypeError, IndexError):
            return None
        if tag not in FINAL_RESPONSES:
            return None
        with self._lock:
            call = self._pending.pop((number, message_id), None)
        if call is not None:
            call.result = _result_code(content)
        return call

    def _maybe_hold(self, call: LdapCall) -> None:
        with self._lock:
            wanted = self._hold is not None and self._hold_count > 0 and call.result == 0
            if wanted:
                op, dn = self._hold
                wanted = call.op == op and (dn is None or _same_dn(call.dn, dn))
            if wanted:
                self._hold_count -= 1
                call.held = True
                self._held_call = call
        if wanted:
            self._held.set()
            self._release.wait(self.hold_timeout)
