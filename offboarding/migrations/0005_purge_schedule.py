"""Schedule the retention purge daily on the task queue (idempotent), and let older leave runs close.

The purge used to be a task inside each leave run, due a year after the last day, which kept
every leave run open for that year. `offboarding.tasks.purge_due` now purges whoever is due,
every night at 03:00 local time. A leave run made before this keeps its date in
`details["purge_due"]`; its waiting purge task is skipped with the reason, so the sweeper can
close the run once the rest of its work is done.
"""

import datetime

from django.db import migrations
from django.utils import timezone

PURGE = "Retention purge of leavers' personal data"
LEGACY_NOTE = "Replaced by the daily retention purge (offboarding.tasks.purge_due), which anonymises on the same day."


def _next_night() -> datetime.datetime:
    now = timezone.localtime()
    at = now.replace(hour=3, minute=0, second=0, microsecond=0)
    return at if at > now else at + datetime.timedelta(days=1)


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=PURGE).exists():
        Schedule.objects.create(
            name=PURGE, func="offboarding.tasks.purge_due", schedule_type="D", repeats=-1, next_run=_next_night()
        )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PURGE).delete()


def skip_legacy_purge_tasks(apps, schema_editor):
    Task = apps.get_model("offboarding", "Task")
    ChecklistRun = apps.get_model("offboarding", "ChecklistRun")
    now = timezone.now()
    waiting = Task.objects.filter(action="purge_personal_data", status__in=["pending", "failed"])
    for task in waiting.select_related("run").order_by("pk").iterator():
        run = task.run
        if "purge_due" not in run.details:
            run.details = {**run.details, "purge_due": timezone.localtime(task.due_at).date().isoformat()}
            ChecklistRun.objects.filter(pk=run.pk).update(details=run.details)
        Task.objects.filter(pk=task.pk, status=task.status).update(status="skipped", completed_at=now, note=LEGACY_NOTE)


class Migration(migrations.Migration):
    dependencies = [
        ("offboarding", "0004_reminder_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_schedule, delete_schedule),
        migrations.RunPython(skip_legacy_purge_tasks, migrations.RunPython.noop),
    ]
