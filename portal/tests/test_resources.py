"""The formula-safe export base (`portal.resources.FormulaSafeResource`), on `auth.Group` and throwaway rows.

Every value a spreadsheet would run as a formula is exported as text with a leading `'`, in CSV
and XLSX; numbers stay numbers; importing the exported file gives back the same values.
"""

import io
from decimal import Decimal

import openpyxl
import pytest
from django.contrib.auth.models import Group
from import_export.fields import Field
from import_export.formats.base_formats import CSV, XLSX
from import_export.widgets import DecimalWidget, IntegerWidget

from portal.resources import FormulaSafeResource, formula_escape, formula_unescape

DANGEROUS = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://evil.example","x")']
HARMLESS = ["Ada Lovelace", "1+1", "a=b", "", "'quoted", "O'Brien"]


class GroupResource(FormulaSafeResource):
    # A number that can be negative, read from an attribute the test sets (groups have none).
    balance = Field(attribute="balance", column_name="balance", widget=DecimalWidget(), readonly=True)
    count = Field(attribute="count", column_name="count", widget=IntegerWidget(), readonly=True)

    class Meta:
        model = Group
        fields = ("name", "balance", "count")
        import_id_fields = ("name",)


def group(name, balance=Decimal("0"), count=0):
    row = Group(name=name)
    row.balance, row.count = balance, count
    return row


def export_csv(rows):
    dataset = GroupResource().export(queryset=rows)
    return CSV().export_data(dataset)


def export_xlsx_cells(rows):
    """The XLSX export as openpyxl cells, one list per data row (header skipped)."""
    dataset = GroupResource().export(queryset=rows, force_native_type=True)
    book = openpyxl.load_workbook(io.BytesIO(XLSX().export_data(dataset)))
    return [list(row) for row in book.active.iter_rows(min_row=2)]


@pytest.mark.parametrize("name", DANGEROUS)
def test_a_formula_is_exported_as_text_with_a_leading_quote(name):
    dataset = GroupResource().export(queryset=[group(name)])
    assert dataset["name"] == ["'" + name]


@pytest.mark.parametrize("name", DANGEROUS)
def test_xlsx_cell_is_text_not_a_formula(name):
    ((cell, *_),) = export_xlsx_cells([group(name)])
    assert cell.data_type == "s"
    assert cell.value == "'" + xlsx_read_back(name)


def xlsx_read_back(text):
    """XLSX is XML, and an XML reader turns a bare carriage return into a line feed."""
    return text.replace("\r", "\n")


@pytest.mark.parametrize("name", DANGEROUS)
def test_csv_cell_starts_with_the_quote(name):
    text = export_csv([group(name)])
    value = CSV().create_dataset(text)["name"][0]
    assert value == "'" + name


@pytest.mark.parametrize("name", HARMLESS)
def test_other_text_is_exported_unchanged(name):
    assert GroupResource().export(queryset=[group(name)])["name"] == [name]


def test_a_quote_before_a_formula_gets_one_more_so_it_can_be_undone():
    assert formula_escape("'=x") == "''=x"
    assert formula_unescape("''=x") == "'=x"


@pytest.mark.parametrize("value", [*DANGEROUS, *HARMLESS, "'=x", "''+1", "'", "''"])
def test_unescape_undoes_escape_exactly(value):
    assert formula_unescape(formula_escape(value)) == value


def test_a_hand_written_quote_before_a_formula_is_read_as_the_text_mark():
    assert formula_unescape("'=x") == "=x"
    assert formula_unescape("'plain") == "'plain"


def test_negative_numbers_stay_numbers_in_csv_and_xlsx():
    row = group("=1+1", balance=Decimal("-12.50"), count=-1)
    dataset = GroupResource().export(queryset=[row])
    assert dataset["balance"][0].startswith("-")  # CSV writes numbers as text, without the quote
    assert dataset["count"] == ["-1"]
    (_, balance, count), *_ = export_xlsx_cells([row])
    assert (balance.data_type, balance.value) == ("n", -12.5)
    assert (count.data_type, count.value) == ("n", -1)


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", [CSV, XLSX])
def test_importing_an_exported_file_gives_back_the_same_names(fmt):
    names = [*DANGEROUS, "Ada Lovelace", "'=x", "'quoted"]
    if fmt is XLSX:
        names.remove("\rx")  # XML reads a bare carriage return back as a line feed: no XLSX keeps one
    groups = Group.objects.filter(pk__in=[Group.objects.create(name=name).pk for name in names])
    native = fmt is XLSX
    exported = fmt().export_data(GroupResource().export(queryset=groups, force_native_type=native))
    groups.delete()

    result = GroupResource().import_data(fmt().create_dataset(exported), raise_errors=True)

    assert not result.has_errors() and not result.has_validation_errors()
    assert sorted(Group.objects.filter(name__in=names).values_list("name", flat=True)) == sorted(names)
