"""Request rate limits shared by every process: a fixed one-minute window counted in Django's cache.

With `REDIS_URL` set the cache is Redis, so web processes on several hosts share one count; on the
embedded stack it is the process's own memory. Used by the SCIM server (per connection, and per
address for refused tokens) and by the REST API (per token or signed-in user).
"""

from django.core.cache import cache
from django.utils import timezone


def over_rate(key: str, limit: int) -> bool:
    """Count one request for `key` in the current minute; True once the count exceeds `limit`."""
    window = int(timezone.now().timestamp() // 60)
    name = f"portal:rate:{key}:{window}"
    cache.add(name, 0, timeout=120)
    try:
        count = cache.incr(name)
    except ValueError:  # the entry expired between add and incr
        cache.set(name, 1, timeout=120)
        count = 1
    return count > limit


def seconds_left_in_window() -> int:
    """Seconds until the current one-minute window ends (what a `Retry-After` header should say)."""
    return max(1, 60 - int(timezone.now().timestamp()) % 60)
