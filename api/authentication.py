"""`Authorization: Bearer portal_…`: a personal access token acts as its user (see `api.services`)."""

from rest_framework import authentication, exceptions

from api.services import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Bearer tokens; no header, another scheme: not ours (session auth may still apply)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send one token: “Authorization: Bearer portal_…”.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("This token is not valid.")
        token = api_token_authenticate(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("This token is not valid, has expired or was revoked.")
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
