"""The HR file import pages of the employee admin: upload, preview, confirm, progress, template files.

`EmployeeImportAdminMixin` takes over django-import-export's `import/` page of the employee admin
(the changelist's Import button leads here): the upload form with the file's encoding and date
format, a preview that says how many people will be created and updated and how many join and
move runs will start, then the import, at once for a small file or on the queue with a progress
bar (the page refreshes itself: no script) and a JSON status endpoint. A refused file lists each
problem (row, column, value, reason) on the page. The uploaded file is read in memory and never
stored. Imports need the add and change permissions on employees; an import is shown only to the
person who uploaded it (anyone else gets 404).
"""

import csv
import io

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.hr_import import COLUMNS, DATE_FORMATS, template_rows
from accounts.models import EmployeeImport, EmployeeImportStatus
from accounts.services import hr_import
from portal.tabular import ENCODINGS

FORM_TEMPLATE = "admin/accounts/employee/hr_import.html"
DETAIL_TEMPLATE = "admin/accounts/employee/hr_import_detail.html"
PREVIEW_ROWS = 200  # rows listed on the preview page (the counts cover them all)


class EmployeeImportForm(forms.Form):
    import_file = forms.FileField(label="HR file", help_text="CSV (comma, semicolon or tab) or Excel workbook (.xlsx).")
    encoding = forms.ChoiceField(
        label="Encoding (CSV only)",
        choices=list(ENCODINGS.items()),
        initial="auto",
        help_text=(
            "Detect reads UTF-8 (with or without BOM), Windows-1252 and Windows-1250, and asks you when it cannot tell."
        ),
    )
    date_format = forms.ChoiceField(
        label="Dates in the file",
        choices=list(DATE_FORMATS.items()),
        initial="iso",
        help_text="ISO dates (2027-03-01) and Excel date cells are always read. A date such as 01/03/2027 is refused "
        "unless you say here which comes first.",
    )


class EmployeeImportAdminMixin:
    """Portal's own HR import for the employee admin (see the module docstring)."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        custom = [
            path("import/", view(self.hr_import_view), name="%s_%s_import" % info),  # noqa: UP031
            path("import/template.<str:fmt>", view(self.hr_template_view), name="%s_%s_import_template" % info),  # noqa: UP031
            path("import/<int:import_id>/", view(self.hr_import_detail_view), name="%s_%s_import_detail" % info),  # noqa: UP031
            path(
                "import/<int:import_id>/status/",
                view(self.hr_import_status_view),
                name="%s_%s_import_status" % info,  # noqa: UP031
            ),
        ]
        return custom + super().get_urls()

    def process_import(self, request, **kwargs):
        # django-import-export's confirm step: this page has its own (refused, like it, to who may not import).
        self._may_import(request)
        return HttpResponseRedirect(reverse("admin:accounts_employee_import"))

    def _may_import(self, request) -> None:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied

    def _context(self, request, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "columns": COLUMNS,
            "template_csv": reverse("admin:accounts_employee_import_template", args=["csv"]),
            "template_xlsx": reverse("admin:accounts_employee_import_template", args=["xlsx"]),
            **extra,
        }

    def hr_import_view(self, request):
        self._may_import(request)
        problems, read_as = [], ""
        if request.method == "POST":
            form = EmployeeImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["import_file"]
                try:
                    data = upload.read()
                finally:
                    upload.close()  # a file spooled to disk is deleted now, whatever comes next
                table, plan = hr_import.employee_import_read(
                    data=data,
                    file_name=upload.name or "",
                    encoding=form.cleaned_data["encoding"],
                    date_format=form.cleaned_data["date_format"],
                    acting_user=request.user,
                )
                del data
                read_as = table.read_as if table is not None else ""
                if plan.ok:
                    record = hr_import.employee_import_preview(
                        table=table,
                        plan=plan,
                        file_name=upload.name or "",
                        date_format=form.cleaned_data["date_format"],
                        acting_user=request.user,
                        lines=[_preview_line(row) for row in sorted(plan.rows, key=lambda r: r.number)[:PREVIEW_ROWS]],
                    )
                    return HttpResponseRedirect(reverse("admin:accounts_employee_import_detail", args=[record.pk]))
                problems = [problem.as_dict() | {"text": str(problem)} for problem in plan.problems]
        else:
            form = EmployeeImportForm()
        context = self._context(
            request,
            title="Import employees from an HR file",
            form=form,
            problems=problems,
            read_as=read_as,
            recent=EmployeeImport.objects.filter(created_by=request.user).order_by("-created_at", "-id")[:5],
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, FORM_TEMPLATE, context, status=400 if problems else 200)

    def _record(self, request, import_id) -> EmployeeImport:
        self._may_import(request)
        record = EmployeeImport.objects.filter(pk=import_id, created_by=request.user).first()
        if record is None:
            raise Http404("No such import.")
        return record

    def hr_import_detail_view(self, request, import_id):
        record = self._record(request, import_id)
        if request.method == "POST":
            if "_abandon" in request.POST:
                hr_import.employee_import_abandon(record=record)
                self.message_user(request, "Import cancelled; nothing was written and the file's rows were deleted.")
                return HttpResponseRedirect(reverse("admin:accounts_employee_import"))
            if "_confirm" in request.POST:
                hr_import.employee_import_confirm(record=record, acting_user=request.user)
                return HttpResponseRedirect(reverse("admin:accounts_employee_import_detail", args=[record.pk]))
        if record.status == EmployeeImportStatus.PREVIEWED:
            hr_import.employee_imports_forget_stale()
            record.refresh_from_db()
        lines = (record.rows or {}).get("preview", []) if record.status == EmployeeImportStatus.PREVIEWED else []
        context = self._context(
            request,
            title=f"HR file import: {record.file_name}",
            record=record,
            state=hr_import.employee_import_progress(record),
            lines=lines,
            background=record.summary.get("rows", 0) > hr_import._conf("BACKGROUND_ROWS"),
            status_url=reverse("admin:accounts_employee_import_status", args=[record.pk]),
            refresh=record.status in (EmployeeImportStatus.QUEUED, EmployeeImportStatus.RUNNING),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, DETAIL_TEMPLATE, context)

    def hr_import_status_view(self, request, import_id):
        record = self._record(request, import_id)
        return JsonResponse(hr_import.employee_import_progress(record))

    def hr_template_view(self, request, fmt):
        self._may_import(request)
        headers, examples, valid = template_rows()
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(headers)
            writer.writerows(examples)
            response = HttpResponse("\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8")
        elif fmt == "xlsx":
            response = HttpResponse(
                _template_xlsx(headers, examples, valid),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        else:
            raise Http404("No such template.")
        response["Content-Disposition"] = f'attachment; filename="employees-template.{fmt}"'
        return response


def _preview_line(row) -> dict:
    if row.is_new:
        action = "create"
    elif row.changes:
        action = "update"
    else:
        action = "unchanged"
    changes = "; ".join(f"{name}: {old or '—'} → {new or '—'}" for name, (old, new) in row.changes.items())
    runs = "join" if row.starts_join else ("move" if row.moves else "")
    name = f"{row.values.get('first_name', '')} {row.values.get('last_name', '')}".strip()
    return {
        "row": row.number,
        "number": row.employee_number,
        "name": name,
        "action": action,
        "changes": changes,
        "run": runs,
    }


def _template_xlsx(headers, examples, valid) -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Employees"
    sheet.append(headers)
    for row in examples:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, header in enumerate(headers, start=1):
        sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width = max(14, len(header) + 4)
    codes = workbook.create_sheet("Valid values")
    codes.append(["Column", "Valid values (code = name); names and codes are both accepted, in any case"])
    for column, values in valid:
        codes.append([column, values])
    codes.append([])
    codes.append(
        ["Dates", "2027-03-01 (YYYY-MM-DD) or Excel date cells; DD/MM/YYYY or MM/DD/YYYY when chosen on the form"]
    )
    codes.append(["Manager", "The manager's employee number or work email (in Portal or in this file)"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
