"""Fixtures of the API tests: a token per audience of `cast` (plus an IT admin) and a client that sends it."""

import json
from types import SimpleNamespace

import pytest
from django.test import Client

from api.services import api_token_create


class ApiClient:
    """Calls the API as one token (or anonymously): `.get(path, **query)`, `.post(path, body, key=...)`."""

    def __init__(self, secret: str | None):
        self.client = Client()
        self.secret = secret

    def _headers(self, key=None, extra=None):
        headers = {}
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(extra or {})
        return headers

    def get(self, path, headers=None, **query):
        return self.client.get(path, query, headers=self._headers(extra=headers))

    def post(self, path, body=None, *, key=None, headers=None):
        return self.client.post(
            path,
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            headers=self._headers(key, headers),
        )


def token_for(user, name="test") -> str:
    return api_token_create(user=user, name=name, expires_in_days=None, acting_user=user)[1]


@pytest.fixture
def api(cast, it_admin):
    """`api.<audience>`: an `ApiClient` with a fresh token of that audience; `api.anonymous` has none."""
    cast.users["it_admin"] = it_admin
    clients = {name: ApiClient(token_for(user)) for name, user in cast.users.items()}
    clients["anonymous"] = ApiClient(None)
    return SimpleNamespace(**clients)
