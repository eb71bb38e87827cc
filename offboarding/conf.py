"""The offboarding app's settings: one accessor, `lifecycle_setting(name)`, for `settings.LIFECYCLE`.

Every default lives in `config/settings.py` `LIFECYCLE`; a key missing there is a mistake, not
a default, and raises KeyError.
"""

from django.conf import settings


def lifecycle_setting(name: str):
    """`settings.LIFECYCLE[name]`: a number of days, a count, or a timedelta, as config/settings.py says."""
    try:
        return settings.LIFECYCLE[name]
    except KeyError:
        raise KeyError(f"settings.LIFECYCLE has no {name!r}; add it to config/settings.py.") from None
