"""Schedule the hourly access housekeeping on the task queue (idempotent): time-bound access that
ended is revoked, holders are told a few days before, approvers are reminded of waiting steps."""

from django.db import migrations

ACCESS = "Access: expiries, notices and approval reminders"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=ACCESS,
        defaults={"func": "offboarding.tasks.access_hourly", "schedule_type": "H", "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=ACCESS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("offboarding", "0005_purge_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
