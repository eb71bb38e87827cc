"""Fixtures of the SCIM server tests: a connection with its token, and a client that speaks SCIM."""

import json

import pytest

from accounts.scim.services import scim_connection_create

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def connection_and_token(db):
    return scim_connection_create(name="Okta", acting_user=None)


@pytest.fixture
def connection(connection_and_token):
    return connection_and_token[0]


class Scim:
    """Django's test client with the bearer token and SCIM's media type."""

    def __init__(self, client, token):
        self.client, self.token = client, token

    def call(self, method, path, body=None, token=None, headers=None, raw=None, **query):
        extra = {"HTTP_AUTHORIZATION": f"Bearer {token or self.token}", **(headers or {})}
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        url = f"/scim/v2/{path.lstrip('/')}"
        if method == "GET":
            return self.client.get(url, query, **extra)
        return self.client.generic(method, url, data, content_type=SCIM, **extra)

    def get(self, path, **query):
        return self.call("GET", path, **query)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, *operations, **kw):
        return self.call("PATCH", path, {"schemas": [PATCH], "Operations": list(operations)}, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def scim(client, connection_and_token):
    return Scim(client, connection_and_token[1])


def user_body(email="ada@example.com", number="S1001", given="Ada", family="Lovelace", **extra):
    enterprise = extra.pop("enterprise", {})
    return {
        "schemas": [USER, ENTERPRISE],
        "userName": email,
        "name": {"givenName": given, "familyName": family},
        ENTERPRISE: {"employeeNumber": number, **enterprise},
        **extra,
    }
