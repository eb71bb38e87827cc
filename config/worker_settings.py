"""Settings for a task worker started by tests and benchmarks (`portal.testing.worker`).

Exactly `config.settings` (database, broker and Q_CLUSTER from the same environment variables:
DATABASE_URL or SQLITE_PATH, REDIS_URL, Q_CLUSTER_NAME, Q_WORKERS, Q_TIMEOUT, Q_RETRY), plus
what a test must shorten and production never sets, all from the environment, in seconds
(decimals allowed):

  PORTAL_RUNNING_DEADLINE  a `running` task whose worker is silent this long is taken over
  PORTAL_QUEUED_DEADLINE   a `queued` task not picked up this long is enqueued again
  PORTAL_BACKOFF_BASE      a failed attempt waits this long before the next, doubling each time

The ORM broker's Q_POLL and Q_BULK are read by `config.settings` itself, so a worker started here
polls and takes work as production does.

The engine reads its deadlines through `offboarding.conf.lifecycle_setting`, i.e. from
`settings.LIFECYCLE`: a test sets the same values in its own process (see
`portal.testing.worker.Deadlines.lifecycle`) so that the sweeper it runs agrees with the worker.
"""

import datetime
import os

from config.settings import *  # noqa: F401,F403
from config.settings import LIFECYCLE, Q_CLUSTER


def _seconds(name: str) -> datetime.timedelta | None:
    value = os.environ.get(name, "")
    return datetime.timedelta(seconds=float(value)) if value else None


LIFECYCLE = dict(LIFECYCLE)
for _key, _env in (
    ("RUNNING_DEADLINE", "PORTAL_RUNNING_DEADLINE"),
    ("QUEUED_DEADLINE", "PORTAL_QUEUED_DEADLINE"),
    ("BACKOFF_BASE", "PORTAL_BACKOFF_BASE"),
):
    if _seconds(_env) is not None:
        LIFECYCLE[_key] = _seconds(_env)

Q_CLUSTER = {**Q_CLUSTER, "sync": False}
