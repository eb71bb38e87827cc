"""The test LDAP peer's front door (`portal.testing.ldap_server.LdapProxy`) is as quick as slapd behind it.

Benchmarks and reliability tests talk to slapd through it; a front door slower than the directory
would make Portal look slow for the peer's sake.
"""

import socket
import statistics
import time

import ldap3


def test_an_answer_of_several_messages_is_not_held_back_by_nagle(ldap_directory):
    """A search that finds an entry is answered in two messages (the entry, then the result). The front
    door forwards each as it comes; with Nagle's algorithm on, the second waited for the client's
    delayed ACK: 44 ms per found entry (two per LDAP revocation) against 0.5 ms from slapd directly.
    Seen red without TCP_NODELAY on the proxy's sockets (median 44 ms)."""
    dn = f"uid=nagle,{ldap_directory.people_dn}"
    with ldap_directory.connection() as admin:
        admin.add(dn, ["inetOrgPerson"], {"uid": "nagle", "cn": "N", "sn": "N", "employeeNumber": "E999"})
    server = ldap3.Server(ldap_directory.url, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(
        server, ldap_directory.admin_dn, ldap_directory.admin_password, auto_bind=True, receive_timeout=10
    )
    try:
        seconds = []
        for _ in range(15):
            started = time.perf_counter()
            assert conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["cn"])
            seconds.append(time.perf_counter() - started)
        proxied = [s for s in ldap_directory.proxy._sockets if s.fileno() != -1]
        assert proxied, "the front door holds this connection's two sockets"
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in proxied)
    finally:
        conn.unbind()
    assert statistics.median(seconds) < 0.02, f"median {statistics.median(seconds) * 1000:.1f} ms per found entry"
