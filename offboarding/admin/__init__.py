"""Admin of the lifecycle app, which owns the pages the lifecycle adds to: one module per page group.

- `employees`: the employee page, composed from the accounts and assets parts plus join, move,
  terminate and the checklists inline; and the HR import with the lifecycle.
- `checklists`: checklist templates and runs; `tasks`: tasks, with retry, skip and mark done.
- `hardware`: hardware returns, and the hardware page composed from assets' plus "ask to return".
- `requests`: managers' move and leave requests.

Importing the package imports every module, so Django's autodiscover registers them all.
"""

from offboarding.admin import checklists, employees, hardware, requests, tasks  # noqa: F401
