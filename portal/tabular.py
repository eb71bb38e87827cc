"""Reading spreadsheet files the way people save them: CSV in any of the usual encodings and delimiters, or XLSX.

`table_read(data, file_name=..., encoding=...)` turns the bytes of an upload into a `Table`: the
header cells and the data rows, each with its number as a spreadsheet shows it (the header is
row 1 when it is the first line), every cell trimmed before anything else reads it. Rows with no
value at all (the blank lines Excel leaves at the end) are dropped. Anything that cannot be read
raises `TableReadError` with a sentence for the person who uploaded the file, never an exception
name. Knows nothing about what the columns mean: that is the importing app's business.
"""

import csv
import datetime
import io
import re
import zipfile
from dataclasses import dataclass, field

from portal.resources import formula_unescape

#: Encodings a person may declare on an import form, and how they are called there.
ENCODINGS = {
    "auto": "Detect (UTF-8, Windows-1252 or Windows-1250)",
    "utf-8": "UTF-8 (CSV UTF-8, Google Sheets, most HR systems)",
    "cp1252": "Windows-1252 (Excel CSV, Western Europe and the Americas)",
    "cp1250": "Windows-1250 (Excel CSV, Central Europe)",
}
ENCODING_NAMES = {"utf-8": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252", "cp1250": "Windows-1250"}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary Excel format (and other OLE files)


class TableReadError(ValueError):
    """The file cannot be read as a table; the message says why in plain words."""


@dataclass
class Row:
    """One data row: its spreadsheet row number and its cells (trimmed text, or a date from an XLSX date cell)."""

    number: int
    cells: list


@dataclass
class Table:
    """What a file holds: headers as written (trimmed), data rows, and how the file was read."""

    headers: list[str]
    rows: list[Row]
    header_row: int = 1
    file_format: str = "csv"
    encoding: str = ""
    delimiter: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def read_as(self) -> str:
        """How the file was read, for the preview page: "CSV, UTF-8, semicolon-separated"."""
        if self.file_format == "xlsx":
            return "XLSX (first sheet)"
        return f"CSV, {ENCODING_NAMES.get(self.encoding, self.encoding)}, {DELIMITER_NAMES[self.delimiter]}-separated"


def column_letter(index: int) -> str:
    """The spreadsheet letter of the 0-based column `index`: 0 → A, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def table_read(data: bytes, *, file_name: str = "", encoding: str = "auto") -> Table:
    """Read an uploaded CSV or XLSX file (told apart by its content, not its name) into a `Table`."""
    if not data or not data.strip():
        raise TableReadError("The file is empty.")
    if data.startswith(XLSX_MAGIC):
        return _read_xlsx(data)
    if data.startswith(XLS_MAGIC):
        raise TableReadError(
            "This is an old-style Excel file (.xls), which Portal does not read. In Excel choose "
            "File → Save As → Excel Workbook (.xlsx) or CSV UTF-8, and upload that."
        )
    if file_name.lower().endswith((".xlsx", ".xlsm")):
        raise TableReadError("The file is named .xlsx but is not an Excel workbook; it may be damaged.")
    if encoding not in ENCODINGS:
        raise TableReadError(f"Unknown encoding {encoding!r}; choose one of: {', '.join(ENCODINGS.values())}.")
    text, used = _decode(data, encoding)
    return _read_csv(text, used)


# --- Encodings ---------------------------------------------------------------------------------


def _decode(data: bytes, declared: str) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8"), "utf-8"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode Text" is UTF-16 with a BOM
        return _strict(data, "utf-16"), "utf-16"
    utf8 = _try(data, "utf-8")
    if declared == "utf-8":
        return _strict(data, "utf-8"), "utf-8"
    if declared in ("cp1252", "cp1250"):
        if utf8 is not None and not data.isascii():
            sample = _first_non_ascii_word(utf8)
            raise TableReadError(
                f"The file is UTF-8 (it reads as “{sample}” in UTF-8), not {ENCODING_NAMES[declared]} as chosen: "
                "reading it as chosen would garble every accented letter. Choose UTF-8 or Detect as the encoding."
            )
        return _strict(data, declared), declared
    # Detect: UTF-8 when it is valid UTF-8; otherwise one of the two Windows code pages.
    if utf8 is not None:
        return utf8, "utf-8"
    western, central = _try(data, "cp1252"), _try(data, "cp1250")
    if western is not None and (central is None or central == western):
        return western, "cp1252"
    if central is not None and western is None:
        return central, "cp1250"
    if western is None and central is None:
        raise TableReadError(
            "The file is neither UTF-8 nor Windows-1252 nor Windows-1250. Save it as CSV UTF-8 (in Excel: "
            "File → Save As → CSV UTF-8) and upload it again."
        )
    chosen = _detect_code_page(data)
    if chosen is None:
        raise TableReadError(
            "The file is not UTF-8, and it reads differently as Windows-1252 (Western Europe) and Windows-1250 "
            f"(Central Europe): “{_first_non_ascii_word(western)}” or “{_first_non_ascii_word(central)}”. "
            "Choose the encoding on the import form, or save the file as CSV UTF-8."
        )
    return (western if chosen == "cp1252" else central), chosen


def _detect_code_page(data: bytes) -> str | None:
    """cp1252 or cp1250 as charset-normalizer judges the text (its language coherence), or None when unsure."""
    from charset_normalizer import from_bytes

    matches = from_bytes(data, cp_isolation=["cp1252", "cp1250"], explain=False)
    best = matches.best()
    if best is None:
        return None
    name = best.encoding.replace("_", "")
    return name if name in ("cp1252", "cp1250") else None


def _try(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableReadError(
            f"The file cannot be read as {ENCODING_NAMES.get(encoding, encoding)}: line {line} holds the byte "
            f"0x{data[exc.start]:02X}, which is not a character in that encoding. Choose another encoding on the "
            "import form (Detect tells UTF-8, Windows-1252 and Windows-1250 apart), or save the file as CSV UTF-8."
        ) from None


def _first_non_ascii_word(text: str) -> str:
    for word in re.split(r"[\s,;\t\"]+", text):
        if not word.isascii():
            return word[:40]
    return text[:40]


# --- CSV ---------------------------------------------------------------------------------------


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first non-blank line (the header) into the most cells."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    best, best_count = ",", 1
    for delimiter in (",", ";", "\t"):
        count = len(next(csv.reader([first], delimiter=delimiter), []))
        if count > best_count:
            best, best_count = delimiter, count
    return best


def _read_csv(text: str, encoding: str) -> Table:
    delimiter = _sniff_delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False))
    except csv.Error as exc:  # e.g. a NUL byte
        raise TableReadError(f"The file is not a readable CSV file ({exc}).") from None
    rows = [Row(number=index + 1, cells=[_clean_text(cell) for cell in record]) for index, record in enumerate(records)]
    return _table(rows, file_format="csv", encoding=encoding, delimiter=delimiter)


def _clean_text(value: str) -> str:
    # Trimmed first (non-breaking spaces too), then the `'` an export put before a formula character removed.
    return formula_unescape(value.strip().replace("\u200b", "").strip())


# --- XLSX --------------------------------------------------------------------------------------


def _read_xlsx(data: bytes) -> Table:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError):
        raise TableReadError("The file looks like an Excel workbook but cannot be opened; it may be damaged.") from None
    try:
        if not workbook.worksheets:
            raise TableReadError("The workbook has no sheet.")
        sheet = workbook.worksheets[0]
        rows = []
        for cells in sheet.iter_rows():
            values = [_xlsx_value(cell) for cell in cells]
            number = next((cell.row for cell in cells if getattr(cell, "row", None)), None)
            if number is None:
                number = (rows[-1].number + 1) if rows else 1
            rows.append(Row(number=number, cells=values))
    finally:
        workbook.close()
    notes = [f"Only the first sheet, “{sheet.title}”, was read."] if len(workbook.sheetnames) > 1 else []
    table = _table(rows, file_format="xlsx")
    table.notes.extend(notes)
    return table


_ZERO_PADDED = re.compile(r"^0+$")


def _xlsx_value(cell):
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.date() if value.time() == datetime.time(0) else value
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        text = str(value)
        number_format = getattr(cell, "number_format", "") or ""
        if _ZERO_PADDED.match(number_format):  # "000123" shown by a 000000 format: the digits people see
            text = text.zfill(len(number_format))
        return text
    if isinstance(value, float):
        return repr(value)
    return _clean_text(str(value))


# --- Shared ------------------------------------------------------------------------------------


def _table(rows: list[Row], **how) -> Table:
    rows = [row for row in rows if any(cell != "" for cell in row.cells)]
    if not rows:
        raise TableReadError("The file has no rows.")
    header, data = rows[0], rows[1:]
    headers = [str(cell) if not isinstance(cell, str) else cell for cell in header.cells]
    # Trailing columns without a header and without a value (Excel's ";;;" at line ends) are not columns.
    width = len(headers)
    while width and headers[width - 1] == "" and all(len(r.cells) < width or r.cells[width - 1] == "" for r in data):
        width -= 1
    headers = headers[:width]
    for row in data:
        if len(row.cells) < width:
            row.cells.extend([""] * (width - len(row.cells)))
    return Table(headers=headers, rows=data, header_row=header.number, **how)
