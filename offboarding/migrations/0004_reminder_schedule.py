"""Schedule the overdue-task reminders every hour on the task queue (idempotent).

Each task is reminded at most every LIFECYCLE["REMINDER_INTERVAL_DAYS"] days, whatever this
schedule's frequency; running hourly only bounds how late after that a reminder goes out.
"""

from django.db import migrations

REMINDERS = "Lifecycle overdue-task reminders"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=REMINDERS,
        defaults={"func": "offboarding.tasks.remind_overdue", "schedule_type": "H", "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=REMINDERS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("offboarding", "0003_tasktemplate_max_attempts"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
