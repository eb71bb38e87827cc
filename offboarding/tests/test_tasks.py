"""The queue's entry points (offboarding.tasks) and the schedules the migrations create for them.

The schedule rows are migration data; `migration_schedules` recreates them through the
migrations' own functions, so these tests pass in any order, after a `transaction=True` test
has flushed the tables too.
"""

import pytest
from django.utils import timezone
from django_q.models import Schedule

from offboarding import tasks
from offboarding.models import ChecklistRun

pytestmark = pytest.mark.django_db


def test_the_queue_entry_points_call_the_services():
    assert set(tasks.sweep()) >= {"requeued_queued", "requeued_running", "started", "closed"}
    assert tasks.remind_overdue() == {"emails": 0, "tasks": 0, "errors": 0}
    assert ChecklistRun.objects.count() == 0


def test_the_schedules_exist_after_migrating(migration_schedules):
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"offboarding.tasks.sweep", "offboarding.tasks.remind_overdue"} <= funcs


def test_the_daily_schedule_calls_the_purge(migration_schedules):
    schedule = Schedule.objects.get(func="offboarding.tasks.purge_due")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
    assert timezone.localtime(schedule.next_run).hour == 3
    assert tasks.purge_due() == {"purged": 0, "already": 0, "errors": 0, "left": 0}
