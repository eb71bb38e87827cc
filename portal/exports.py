"""Spreadsheet downloads of a table a page computed (reports, not model exports): CSV or XLSX, formula-safe.

Every text cell goes through `portal.resources.formula_escape`, as the model exports do, so a value
such as `=HYPERLINK(...)` is text in the auditor's spreadsheet. CSV is UTF-8 with a byte-order mark
(Excel then reads accents right); XLSX has a bold header row. Times are written in the
server's time zone (`TIME_ZONE`), without a zone, as spreadsheets expect.
"""

import csv
import datetime
import io
from collections.abc import Iterable, Sequence

from django.http import Http404, HttpResponse
from django.utils import timezone

from portal.resources import formula_escape

FORMATS = ("csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value):
    if isinstance(value, str):
        return formula_escape(value)
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return timezone.localtime(value).replace(tzinfo=None, microsecond=0)  # spreadsheets know no zones
    return value


def spreadsheet_response(*, filename: str, headers: Sequence[str], rows: Iterable[Sequence], fmt: str) -> HttpResponse:
    """The rows as a download named `<filename>.<fmt>`; an unknown format is a 404."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([_cell(h) for h in headers])
        writer.writerows([_cell(v) for v in row] for row in rows)
        response = HttpResponse("\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8")
    elif fmt == "xlsx":
        import openpyxl
        from openpyxl.styles import Font

        workbook = openpyxl.Workbook(write_only=True)
        sheet = workbook.create_sheet(filename[:31])
        header_cells = []
        for header in headers:
            cell = openpyxl.cell.WriteOnlyCell(sheet, value=_cell(header))
            cell.font = Font(bold=True)
            header_cells.append(cell)
        sheet.append(header_cells)
        for row in rows:
            sheet.append([_cell(v) for v in row])
        buffer = io.BytesIO()
        workbook.save(buffer)
        response = HttpResponse(buffer.getvalue(), content_type=XLSX_TYPE)
    else:
        raise Http404("No such format.")
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response
