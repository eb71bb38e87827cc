"""Three request guards every page shares.

- A query string holding a NUL character is refused with 400 and a plain reason: no field may hold
  one, and PostgreSQL refuses it in any text comparison (a filter or search would fail with a 500).
- Responses for signed-in users are private: `Cache-Control: private, no-store`. Every page a
  signed-in user sees (self-service and admin alike) shows their own data or data they may see,
  so neither a shared browser's cache nor a proxy may keep a copy. Other directives a view sets
  (the admin's `never_cache`) are kept; `public` is replaced.
- A page not found shows Portal's own page (templates/404.html) with DEBUG on as well: Django's
  debug 404 lists every URL pattern of the project, which a demo or a laptop on a network shows to
  anyone who mistypes an address.
"""

from django.conf import settings
from django.http import Http404, HttpResponseBadRequest
from django.utils.cache import patch_cache_control
from django.views.defaults import page_not_found

NUL_REFUSED = "The address contains a NUL character (%00), which no search, filter or field may hold."


class NulQueryRefusedMiddleware:
    """400 for a query string with a NUL character in a key or a value; nothing else is looked at."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return HttpResponseBadRequest(NUL_REFUSED, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


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


class NotFoundPageMiddleware:
    """With DEBUG on, a 404 renders `404.html` instead of Django's technical page (DEBUG off: Django does so).

    `Http404` raised by a view is answered in `process_exception`; an address no URL pattern matches
    never reaches a view (`request.resolver_match` stays None), so its technical page is replaced here.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.DEBUG and response.status_code == 404 and getattr(request, "resolver_match", None) is None:
            return page_not_found(request, Http404())
        return response

    def process_exception(self, request, exception):
        if settings.DEBUG and isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
