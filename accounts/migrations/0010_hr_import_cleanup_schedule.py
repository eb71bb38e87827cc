"""Schedule the HR import clean-up every 10 minutes on the task queue (idempotent).

A preview nobody confirms within PORTAL_IMPORT_PREVIEW_MINUTES is abandoned and its cells deleted
(`accounts.services.hr_import.employee_imports_forget_stale`), so an HR file's rows do not wait in
the database for the next upload.
"""

from django.db import migrations

CLEANUP = "HR import: forget abandoned previews"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=CLEANUP,
        defaults={
            "func": "accounts.tasks.employee_imports_forget_stale",
            "schedule_type": "I",
            "minutes": 10,
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=CLEANUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_employee_import"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
