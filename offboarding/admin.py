"""Admin for the lifecycle engine. (Minimal registration; the full checklist admin follows.)"""

from django.contrib import admin

from offboarding.models import ChecklistRun, ChecklistTemplate, HardwareReturn, Task, TaskTemplate
from portal.admin import PortalModelAdmin

for model in (ChecklistTemplate, TaskTemplate, ChecklistRun, Task, HardwareReturn):
    admin.site.register(model, PortalModelAdmin)

# Lifecycle actions on the Employee page live in their own module.
from offboarding import employee_admin  # noqa: E402,F401
