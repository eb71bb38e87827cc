"""Test helpers other test suites import: real servers on 127.0.0.1, no mocks.

- `portal.testing.ldap_server.LdapServer`: a throwaway OpenLDAP slapd (needs Debian's slapd).
- `portal.testing.webhook_server.WebhookServer`: a webhook receiver that checks Portal's
  signature, dedupes by idempotency key, records calls and effects, and fails on request.
- `portal.testing.worker`: a real django-q2 worker in a subprocess (see its docstring).

The root `conftest.py` wraps them as the `ldap_server` / `ldap_directory` and `webhook_server`
fixtures. Nothing here is imported by the running application.
"""
