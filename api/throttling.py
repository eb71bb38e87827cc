"""A rate limit per token (or signed-in user, or address when anonymous): `PORTAL_API_REQUESTS_PER_MINUTE`.

Counted in Django's cache through `portal.ratelimit`, so with Redis configured every web process and
host shares the count. Over the limit the API answers 429 with `Retry-After` and a sentence saying so.
"""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from api.models import ApiToken
from portal.ratelimit import over_rate, seconds_left_in_window
from portal.signin import client_address


class PerTokenRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        if isinstance(request.auth, ApiToken):
            key = f"api:token:{request.auth.pk}"
        elif request.user.is_authenticated:
            key = f"api:user:{request.user.pk}"
        else:
            key = f"api:address:{client_address(request)}"
        return not over_rate(key, settings.PORTAL_API_REQUESTS_PER_MINUTE)

    def wait(self):
        return seconds_left_in_window()
