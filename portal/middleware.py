"""Responses for signed-in users are private: `Cache-Control: private, no-store`.

Every page a signed-in user sees (self-service and admin alike) shows their own data or data
they may see, so neither a shared browser's cache nor a proxy may keep a copy. Other
directives a view sets (the admin's `never_cache`) are kept; `public` is replaced.
"""

from django.utils.cache import patch_cache_control


class PrivatePagesMiddleware:
    """Marks every response to an authenticated request `private, no-store` (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
