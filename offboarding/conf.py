"""The offboarding app's settings: one accessor, `lifecycle_setting(name)`, for `settings.LIFECYCLE`.

Every default lives in `config/settings.py` `LIFECYCLE`; a key missing there is a mistake, not
a default, and raises KeyError.
"""

import datetime

from django.conf import settings


def _fallback(name: str):
    # TODO(lead): these four are not in config/settings.py LIFECYCLE yet; once they are (see the
    # report of the `offb` branch), delete this fallback.
    q_cluster = settings.Q_CLUSTER
    fallbacks = {
        # A claimed task whose worker is silent this long is presumed dead (must exceed Q timeout).
        "RUNNING_DEADLINE": lambda: datetime.timedelta(seconds=q_cluster["timeout"] + 30),
        # A queued task not picked up this long is presumed lost by the broker.
        "QUEUED_DEADLINE": lambda: datetime.timedelta(seconds=q_cluster.get("retry", 90) + 30),
        "BACKOFF_BASE": lambda: datetime.timedelta(seconds=30),
        "BACKOFF_MAX": lambda: datetime.timedelta(hours=1),
    }
    if name not in fallbacks:
        raise KeyError(f"settings.LIFECYCLE has no {name!r}; add it to config/settings.py.")
    return fallbacks[name]()


def lifecycle_setting(name: str):
    """`settings.LIFECYCLE[name]`: a number of days, a count, or a timedelta, as config/settings.py says."""
    lifecycle = settings.LIFECYCLE
    return lifecycle[name] if name in lifecycle else _fallback(name)
