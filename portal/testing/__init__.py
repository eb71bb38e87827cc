"""Test helpers other test suites import: real servers on 127.0.0.1, no mocks.

- `portal.testing.ldap_server.LdapServer`: a throwaway OpenLDAP slapd (needs Debian's slapd).
- `portal.testing.webhook_server.WebhookServer`: `portal.targets.WebhookTarget`, a receiver that checks Portal's
  signature, dedupes by idempotency key, records calls and effects, and fails on request.
- `portal.testing.scim_server.ScimServer`: `portal.targets.ScimTarget`, scim2-server's provider (tenants = target
  applications) behind a front door that counts calls and applied writes, fails and holds on request.
- `portal.testing.worker`: a real django-q2 worker in a subprocess (see its docstring).
- `portal.testing.browser`: a real headless Chromium and page helpers for end-to-end tests.
- `portal.testing.concurrency` and `portal.testing.assertions`: races, and "refused, nothing written".

The root `conftest.py` wraps the servers as the `ldap_server` / `ldap_directory` and `webhook_server`
fixtures, the conftest in `config/tests/` the browser as `browser` / `new_page`. Nothing here is imported
by the running application.
"""
