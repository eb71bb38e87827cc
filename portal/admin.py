"""Admin building blocks every app composes its pages from, the read-only audit log and email outbox.

Registers `AuditEvent` and `OutboundEmail`, both read-only, and the event hooks (`EventSubscriber`, saved
through `portal.events`, and its read-only delivery log `EventDelivery`). Exports the base classes
(`PortalModelAdmin`: history without revert, cheap changelists, junk in the query string answered like a bad lookup;
`PortalImportExportAdmin`: plus CSV/XLSX import and
export), the read-only parts (`ReadOnlyInline`, `ReadOnlyRecordMixin`,
`ActionsOnlyRecordMixin`: each docstring says what it forbids) and the one "confirm
then apply" action mechanism (`ConfirmAction`). Imports no Portal app.
"""

import datetime
import json
from urllib.parse import quote as url_quote

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, F, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import RFC3986_SUBDELIMS
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential
from import_export.admin import ExportMixin, ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX
from simple_history.admin import SimpleHistoryAdmin

from portal import events, scoping
from portal.auditsentences import changes_html, describe, describe_one, sentence_html
from portal.models import (
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditEventPersonal,
    EventDelivery,
    EventSubscriber,
    EventType,
    OutboundEmail,
    RecoveryCodeDevice,
)
from portal.resources import AuditEventResource


class EstimatedCountPaginator(Paginator):
    """A paginator that, for a whole big table on PostgreSQL, takes the planner's row estimate as the count.

    `COUNT(*)` on PostgreSQL reads the whole table (or index); on an unfiltered changelist of a
    table with hundreds of thousands of rows that is most of the page's time. When the queryset
    has no filter (no WHERE, DISTINCT, GROUP BY, LIMIT or set operation, so its count is the
    table's row count) and `pg_class.reltuples` says the table holds more than `threshold` rows,
    that estimate is the count: off by a few percent, which a changelist can live with (the
    last page may be short or empty). Anything else is counted exactly up to a cap: `count_cap` rows,
    or ten pages past the page asked for (`page_hint`, which the admin sets) when that is more. A
    filter that selects 90,000 of 130,000 assets then reads 10,001 index entries instead of 90,000,
    and the list says "more than 10000" (`count_is_lower_bound`, `count_limit`) instead of a number it did not
    count. Filtered and searched lists below the cap count what they show.

    The estimate, the fallback count and the capped count are each one query, so a page issues the
    same number of queries whichever way it goes.
    """

    threshold = 10_000
    count_cap = 10_000
    page_hint = 1  # the page the changelist will show (1-based)
    count_is_lower_bound = False  # True when there are more than `count_limit` rows, the count's cap in effect
    count_limit = None

    @cached_property
    def count(self) -> int:
        table = self._whole_table()
        if table is None:
            return self._capped_count()
        connection = connections[self.object_list.db]
        quoted = connection.ops.quote_name(table)
        with connection.cursor() as cursor:
            # The scalar subquery is an InitPlan: PostgreSQL runs it only when the ELSE branch needs it.
            # `quoted` is the model's own table name, quoted by the backend (not user input).
            cursor.execute(
                "SELECT CASE WHEN c.reltuples > %s THEN c.reltuples::bigint "  # noqa: S608
                f"ELSE (SELECT COUNT(*) FROM {quoted}) END "
                "FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [self.threshold, quoted],
            )
            row = cursor.fetchone()
        return int(row[0]) if row is not None else self._capped_count()

    def _capped_count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if (
            query is None
            or query.is_sliced
            or query.combinator
            or query.distinct_fields
            or getattr(queryset, "_result_cache", None) is not None
        ):
            return super().count
        cap = max(self.count_cap, (min(self.page_hint, 1_000_000) + 10) * self.per_page)
        # No ORDER BY: sorting would need every match before the LIMIT applies.
        counted = queryset.order_by()[: cap + 1].count()
        self.count_is_lower_bound, self.count_limit = counted > cap, cap
        return counted

    def _whole_table(self) -> str | None:
        """The table name when the object list is an unfiltered queryset on PostgreSQL; else None."""
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None or connections[queryset.db].vendor != "postgresql":
            return None
        if (
            query.has_filters()
            or query.distinct
            or query.combinator
            or query.group_by is not None
            or query.is_sliced
            or getattr(queryset, "_result_cache", None) is not None
        ):
            return None
        return queryset.model._meta.db_table


class ChangelistPaginator(EstimatedCountPaginator):
    """The admin's paginator: `EstimatedCountPaginator`'s count, and each page read as "the rows whose id is
    among this page's ids", the ids sorted and cut to the page on the model's table alone.

    A changelist joins the related rows it shows (`list_select_related`). Sorted and cut to a page in
    one query, the database joins every matching row before it sorts: a search for a common surname
    among 100,000 employees joined ~3,300 people to their departments, locations, managers and roles to
    show 50 (18 ms on SQLite, 1 ms this way), so the page grew with the company. Here the ids come from
    a subquery (`WHERE id IN (SELECT id ... ORDER BY ... LIMIT 50 OFFSET n)`) and only the page's rows
    are joined: still one query, the same rows in the same order. A DISTINCT, unordered, combined or
    already cut queryset is paged as Django does.

    For searches only (an admin's `get_paginator` chooses it): on a plain filter the planner may pick a
    worse plan for the subquery (the hardware list filtered by status: 0.4 ms joined, 24 ms by ids on
    SQLite at 100k).
    """

    def page(self, number):
        page = super().page(number)
        rows, whole = page.object_list, self.object_list
        query = getattr(whole, "query", None)
        if (
            isinstance(whole, QuerySet)
            and isinstance(rows, QuerySet)
            and whole.ordered
            and not (query.distinct or query.combinator or query.is_sliced)
            and getattr(whole, "_result_cache", None) is None
        ):
            ids = rows
            ordering = _against_index_order(whole) if connections[whole.db].vendor == "postgresql" else None
            if ordering is not None:
                ids = whole.order_by(*ordering)[rows.query.low_mark : rows.query.high_mark]
            page.object_list = whole.filter(pk__in=ids.values("pk"))
        return page


def _against_index_order(queryset) -> list | None:
    """The queryset's ordering with NULLs placed against PostgreSQL's index order (ASC NULLS FIRST, DESC NULLS
    LAST), when every term is a NOT NULL column of the model, so the rows come in the same order; else None.

    PostgreSQL answers `WHERE <a search's OR> ORDER BY last_name, first_name, id LIMIT 50` by reading the
    (last_name, first_name, id) index in order, filtering, betting that matches are spread evenly. A
    surname search's matches are all in one place: among 100,000 employees "Zhang" read 97,000 pages
    (319 ms) to find 50 people at the end of the alphabet. No index gives this ordering, so the planner
    fetches the matches through their indexes and sorts them (3,000 pages, 16 ms for 3,334 matches):
    the page costs what the search finds, not where in the alphabet it is.
    """
    query, opts = queryset.query, queryset.model._meta
    terms = query.order_by or (opts.ordering if query.default_ordering else ())
    ordering = []
    for term in terms:
        if not isinstance(term, str) or term.lstrip("-") in ("", "?") or LOOKUP_SEP in term:
            return None
        name = term.lstrip("-")
        try:
            field = opts.pk if name == "pk" else opts.get_field(name)
        except FieldDoesNotExist:
            return None
        if field.null or field.is_relation or not field.concrete:
            return None
        column = F(field.attname)
        ordering.append(column.desc(nulls_last=True) if term.startswith("-") else column.asc(nulls_first=True))
    return ordering or None


class UnreadableQueryMixin:
    """For a model admin: a changelist query string it cannot read gets Django's "incorrect lookup" answer.

    Django turns a filter value the database refuses into `IncorrectLookupParameters` (the list comes
    back unfiltered, with `?e=1`), but not every one: a date hierarchy's year too big for a date
    (`OverflowError`), a number too big for the database's integer (`OverflowError`), a value a
    custom filter or search cannot convert (`ValueError`, `ValidationError`). Those get the same
    answer here instead of a server error. Every Portal admin has it; the admins other apps register
    (auth, django-q) read only Django's own filters, which answer junk without a server error
    (`config/tests/test_junk_input.py` sweeps them too), so they need no wrapper.
    """

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except (OverflowError, ValueError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class CheapRowsChangeList(ChangeList):
    """Django's changelist, with each row's change link built from one resolved URL instead of a
    `reverse()` per link (two per row when two columns link): the URLs differ only by the pk."""

    _PK_MARKER = "portal-pk-marker"

    def url_for_result(self, result):
        if not hasattr(self, "_change_url_parts"):
            url = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=(self._PK_MARKER,),
                current_app=self.model_admin.admin_site.name,
            )
            head, _marker, tail = url.rpartition(self._PK_MARKER)
            self._change_url_parts = (head, tail)
        head, tail = self._change_url_parts
        # As `reverse()` would: the admin's quoting of the pk, then the URL's (a space is %20).
        return f"{head}{url_quote(str(quote(getattr(result, self.pk_attname))), safe=RFC3986_SUBDELIMS + '/~:@')}{tail}"


class CheapChangelistMixin:
    """For a model admin: a changelist that counts at most what it can page through, and rows without
    per-row template or URL-resolver work.

    `get_paginator` tells an `EstimatedCountPaginator` which page is asked for, so that its capped count
    reaches it; admins choose the paginator class in `get_paginator_class`. The templates
    `admin/pagination.html`, `admin/search_form.html` and `admin/actions.html` say "more than N" when
    the count stopped at its cap.

    A page's cost grows with its rows (50 at most), so a search that finds one person at 1,000
    employees and 50 at 100,000 renders a bigger page there. Of what a row cost, Django's selection
    checkbox (a `CheckboxInput` rendered through the form template engine, per row) was about a
    third and the change links' `reverse()` another eighth; both give the same HTML here.
    """

    def action_checkbox(self, obj):
        # The HTML `forms.CheckboxInput(attrs).render(ACTION_CHECKBOX_NAME, str(obj.pk))` gives,
        # attributes in the same order, escaped the same way.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(_("Select this object for an action - {}"), str(obj)),
        )

    def get_paginator_class(self, request):
        return self.paginator

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        paginator = self.get_paginator_class(request)(queryset, per_page, orphans, allow_empty_first_page)
        if isinstance(paginator, EstimatedCountPaginator):
            page = request.GET.get(PAGE_VAR, "")
            usable = page.isascii() and page.isdigit() and len(page) <= 9  # int() refuses 4,300+ digits
            paginator.page_hint = int(page) if usable and int(page) > 0 else 1
        return paginator

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if changelist is ChangeList:
            return CheapRowsChangeList
        return changelist


class ScopedAdminMixin:
    """For every Portal model admin: what a scoped user (`accounts.AdminScope`) reads, is offered and saves
    stays inside their scope, through `accounts.scoping.restrict` (reached as `portal.scoping`).

    - `get_queryset` is restricted, so the changelist, its export, every action (the selected ids are
      looked up in it), the change, delete and history pages and the autocomplete pickers that use this
      model see only rows inside the scope. An admin narrows or annotates its rows in
      `get_base_queryset`; defining `get_queryset` itself is refused when the class is made, so no
      admin can read past the scope.
    - A row that does not exist, or is outside the scope, answers 404 alike (Django would redirect to
      the index with a message), and so do its history pages.
    - Every model choice on the add and change forms (a manager, a holder ...) is narrowed to the scope,
      and a form whose object would end up outside it (an employee moved to another office, an asset
      created elsewhere) is refused with a sentence, nothing saved.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} defines get_queryset: define get_base_queryset instead, which "
                "get_queryset restricts to the signed-in user's scope."
            )

    def get_queryset(self, request):
        return scoping.restricted(self.get_base_queryset(request), request.user)

    def get_base_queryset(self, request):
        """The rows this admin shows anyone (narrowed, annotated, joined), before the scope applies."""
        return super().get_queryset(request)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No {opts.verbose_name} with ID “{object_id}”.")

    def _object_in_scope_or_404(self, request, object_id):
        if scoping.is_scoped(request.user) and self.get_object(request, unquote(object_id)) is None:
            raise Http404(f"No {self.opts.verbose_name} with ID “{object_id}”.")

    def history_view(self, request, object_id, extra_context=None):
        self._object_in_scope_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if not scoping.is_scoped(request.user):
            return form_class
        return scoped_form(form_class, request.user)


def scoped_form(form_class, user):
    """`form_class` (a model form) with its model choices narrowed to `user`'s scope, refusing an instance
    that would be outside it."""

    class ScopedForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scoping.form_choices_restrict(self, user)

        def _post_clean(self):
            super()._post_clean()
            if not self._errors and not scoping.allows(self.instance, user):
                self.add_error(None, scoping.refusal(self.instance, user))

    ScopedForm.__name__ = ScopedForm.__qualname__ = form_class.__name__
    return ScopedForm


class PortalModelAdmin(ScopedAdminMixin, CheapChangelistMixin, UnreadableQueryMixin, SimpleHistoryAdmin):
    """A model admin with simple-history's history view, which is read-only.

    Reverting from the history page would save an old version of the row
    outside the services (for an asset: an old holder and status, out of step
    with its check-out log), and simple-history lets anyone who may *view* the
    history post the revert form. So history here is for reading: the revert
    button is hidden and a POST to the history form is refused for everyone.
    """

    list_per_page = 50
    # The changelist's "N total" count is a full-table COUNT(*); skip it.
    show_full_result_count = False
    # An unfiltered list of a big table on PostgreSQL counts from the planner's estimate.
    paginator = EstimatedCountPaginator

    def revert_disabled(self, request, obj=None):
        return True

    def hidden_fields(self, request) -> tuple[str, ...]:
        """Fields this user may not see (sensitive data): left out of the form, the history page's changes and
        exports. None by default."""
        return ()

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        hidden = self.hidden_fields(request)
        if not hidden:
            return super().set_history_delta_changes(request, historical_records, foreign_keys_are_objs)
        previous = None
        for current in historical_records:  # simple-history's own loop, with the hidden fields left out
            if previous is not None:
                delta = previous.diff_against(
                    current, excluded_fields=hidden, foreign_keys_are_objs=foreign_keys_are_objs
                )
                helper = self.get_historical_record_context_helper(request, previous)
                previous.history_delta_changes = helper.context_for_delta_changes(delta)
            previous = current
        return None

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("History is read-only here; change the current record instead.")
        self._object_in_scope_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)


class PortalImportExportAdmin(ImportExportMixin, PortalModelAdmin):
    """`PortalModelAdmin` plus import (needs the add permission) and export (needs view).

    MRO: the import-export mixin comes first so its changelist template, URLs and
    context wrap simple-history's, which in turn wraps `ModelAdmin`; both call
    `super()` throughout, so the history, import and export URLs all exist.
    Imports are all-or-nothing (see `portal.resources.PortalResource`).
    """

    formats = [CSV, XLSX]
    import_error_display = ("message",)

    def process_result(self, result, request):
        # The confirm step imports the file again; the database may have changed since the
        # preview. The resource then rolls everything back: say so, instead of "N new rows".
        if result.has_errors() or result.has_validation_errors():
            self.message_user(request, f"Nothing was imported. {describe_import_errors(result)}", messages.ERROR)
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import", current_app=self.admin_site.name)
            )
        return super().process_result(result, request)


def describe_import_errors(result, limit: int = 10) -> str:
    """The first `limit` problems of an import result, as "row N, column: reason" phrases."""
    problems = [f"{error.error}" for error in result.base_errors]
    for number, errors in result.row_errors():
        problems.extend(f"row {number}: {error.error}" for error in errors)
    for row in result.invalid_rows:
        for column, reasons in row.error_dict.items():
            label = "" if column == NON_FIELD_ERRORS else f", {column}"
            problems.extend(f"row {row.number}{label}: {reason}" for reason in reasons)
    shown = "; ".join(problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{shown}{more}."


class ReadOnlyInline(admin.TabularInline):
    """An inline that only shows related rows, each with a link to its own page.

    Forbids adding, changing and deleting rows through the inline (every field is read-only);
    changes go through the services, from the rows' own pages or actions.
    """

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyRecordMixin:
    """For a model admin of records only services write and nobody acts on here (requests, approvals, logs).

    Forbids add, change and delete for everyone, so the pages are view (and export) only and the
    list offers no actions. Use `ActionsOnlyRecordMixin` when the record has actions.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ActionsOnlyRecordMixin:
    """For a model admin of records that change only through its actions (runs, tasks, returns).

    Forbids add and delete, shows every field read-only without save buttons, and refuses a POST
    to the change form (403). The change permission is kept: it is what the actions require.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f for entry in self.get_fields(request, obj) for f in (entry if isinstance(entry, tuple) else (entry,))]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("This record changes only through its actions.")
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)


def overdue_badge(overdue: bool):
    """An "overdue" column's cell: a red "Overdue" when it is, a dash when not.

    Not `boolean=True`: Django draws True as a green tick, which read as "fine" beside an overdue row.
    """
    if overdue:
        return format_html('<strong class="portal-overdue" style="color:#ba2121">{}</strong>', "Overdue")
    return "—"


def report_action_results(
    modeladmin, request, *, done_message: str, done: list[str], failed: list[tuple[str, str]]
) -> None:
    """One success message naming every item that worked, and one error per item that did not, with its reason."""
    if done:
        modeladmin.message_user(request, f"{done_message}: {', '.join(done)}.", messages.SUCCESS)
    for name, reason in failed:
        modeladmin.message_user(request, f"{name}: {reason}", messages.ERROR)


ACTION_FORM_TEMPLATE = "admin/portal/action_form.html"


class ConfirmAction:
    """An admin action that asks for a small form first, then applies it to each selected object.

    Modelled on Django's `delete_selected`. Declared on a model admin (`retire = ConfirmAction(...)`,
    listed by name in `actions`), the changelist's POST shows an intermediate page with the form
    and the selected objects; the page posts again with "apply". Then the form is validated: when
    invalid, the page comes back with its errors and nothing is called; when valid,
    `apply(request, obj, cleaned_data)` is called once per object, a `ValidationError` failing
    that object only, and `report_action_results` says what worked and why anything did not
    (a string `apply` returns is the object's entry in the success message). Without every
    permission in `permissions` the action is not offered, and calling it raises `PermissionDenied`.

    `select(modeladmin, request, queryset)` gives the objects to act on, in order (it may tell
    the user about the ones it leaves out; none left: back to the list). `describe(obj)` is an
    object's line on the page, `label(obj)` its name in the results (default: `describe`).
    An object's own page reuses the action with `run(..., action=None)`: the form posts to that page.
    """

    def __init__(
        self,
        *,
        form_class,
        apply,
        description: str,
        submit_label: str,
        done_message: str,
        permissions=("change",),
        select=None,
        describe=str,
        label=None,
        title: str | None = None,
        template: str = ACTION_FORM_TEMPLATE,
        name: str | None = None,
    ):
        self.form_class = form_class
        self.apply = apply
        self.short_description = description  # what Django's `@admin.action(description=...)` sets
        self.allowed_permissions = tuple(permissions)
        self.submit_label = submit_label
        self.done_message = done_message
        self.select = select or (lambda modeladmin, request, queryset: list(queryset))
        self.describe = describe
        self.label = label or describe
        self.title = title
        self.template = template
        self.__name__ = name

    def __set_name__(self, owner, name):
        if self.__name__ is None:
            self.__name__ = name  # the action's name: the changelist posts it back

    def __call__(self, modeladmin, request, queryset):
        objects = self.select(modeladmin, request, queryset)
        if not objects:
            return None
        return self.run(modeladmin, request, objects, action=self.__name__)

    def run(
        self,
        modeladmin,
        request,
        objects,
        *,
        action=None,
        back_url=None,
        back_label="",
        title=None,
        errors_on_form=False,
    ):
        """The intermediate page for `objects`, or None once applied (the caller then redirects).

        `action` is the changelist action's name, None on an object's own page. With
        `errors_on_form` (one object's page), a refusal is shown on the form, which comes back.
        """
        for permission in self.allowed_permissions:
            if not getattr(modeladmin, f"has_{permission}_permission")(request):
                raise PermissionDenied
        applying = request.method == "POST" and "apply" in request.POST
        form = self.form_class(request.POST if applying else None)
        scoping.form_choices_restrict(form, request.user)  # a scoped user picks people inside their scope
        if applying and form.is_valid():
            done, failed = [], []
            for obj in objects:
                try:
                    result = self.apply(request, obj, form.cleaned_data)
                except ValidationError as exc:
                    if errors_on_form:
                        form.add_error(None, exc)  # a dict error lands on its field
                    failed.append((self.label(obj), " ".join(exc.messages)))
                else:
                    done.append(result if isinstance(result, str) else self.label(obj))
            if not (errors_on_form and failed):
                report_action_results(modeladmin, request, done_message=self.done_message, done=done, failed=failed)
                return None
        opts = modeladmin.opts
        noun = opts.verbose_name if len(objects) == 1 else opts.verbose_name_plural
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": title or self.title or f"{self.submit_label}: {len(objects)} {noun}",
            "opts": opts,
            "form": form,
            "media": modeladmin.media + form.media,
            "objects": [self.describe(obj) for obj in objects],
            "object_ids": [obj.pk for obj in objects],
            "action": action,
            "submit_label": self.submit_label,
            "back_url": back_url
            or reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=modeladmin.admin_site.name),
            "back_label": back_label,
        }
        request.current_app = modeladmin.admin_site.name
        return TemplateResponse(request, self.template, context)


class AuditSentenceChangeList(ChangeList):
    """The audit list: each page's sentences written at once (`portal.auditsentences.describe`), so the
    page costs the same number of queries whatever it shows."""

    def get_results(self, request):
        super().get_results(request)
        pieces = describe(self.result_list)
        for event in self.result_list:
            event._sentence = pieces[event.pk]


class AuditActorFilter(admin.SimpleListFilter):
    """Who did it: the system, or one user (staff are listed; any user's id works in the query string)."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        names = {}
        users = get_user_model()._default_manager.filter(is_staff=True).order_by("username")
        for user in users.only("id", "username"):
            names[user.pk] = user.get_username()
        return [("system", "System (no user)")] + [(str(pk), name) for pk, name in names.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "system":
            return queryset.filter(actor__isnull=True)
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise IncorrectLookupParameters(f"Unknown actor {value!r}.")
        return queryset.filter(actor_id=int(value))


class AuditHiddenFilter(admin.SimpleListFilter):
    """A filter set by links from other pages: no choices in the sidebar, only what it is set to and a
    link that clears it (`admin/portal/link_filter.html`)."""

    template = "admin/portal/link_filter.html"

    def lookups(self, request, model_admin):
        return ()

    def has_output(self):
        return True  # Django applies only the filters that have output

    def choices(self, changelist):
        if self.value() is None:
            return []
        return [{"value": self.value(), "clear_url": changelist.get_query_string(remove=[self.parameter_name])}]


class AuditTargetFilter(AuditHiddenFilter):
    """`?target=accounts.Employee:12`: the events about one object (its "Audit trail" link)."""

    title = "target"
    parameter_name = "target"

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        label, _, pk = value.rpartition(":")
        if not label or not pk or len(pk) > 64:
            raise IncorrectLookupParameters(f"Unknown target {value!r}: give it as app.Model:id.")
        return queryset.filter(target_type=label, target_id=pk)


class AuditPersonFilter(AuditHiddenFilter):
    """`?person=12`: the events about one employee: those whose target is them, and those whose detail
    names them as the employee (grants, revokes, check-outs, requests, checklists of theirs)."""

    title = "person"
    parameter_name = "person"

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise IncorrectLookupParameters(f"Unknown person {value!r}.")
        return queryset.filter(
            Q(target_type="accounts.Employee", target_id=value) | Q(personal__detail__employee=int(value))
        )


class AuditDateRangeFilter(admin.FieldListFilter):
    """From and to dates (both included), typed in the sidebar; either may be left empty."""

    template = "admin/portal/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.since_param = f"{field_path}__since"
        self.until_param = f"{field_path}__until"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.dates = {}
        for key in (self.since_param, self.until_param):
            raw = self.used_parameters.get(key)
            value = (raw[-1] if isinstance(raw, list) else raw) if raw else ""
            self.used_parameters[key] = value
            if value == "":
                continue
            try:
                self.dates[key] = datetime.date.fromisoformat(value)
            except ValueError as exc:
                raise IncorrectLookupParameters(f"{value!r} is not a date (YYYY-MM-DD).") from exc

    def expected_parameters(self):
        return [self.since_param, self.until_param]

    def has_output(self):
        return True

    def choices(self, changelist):
        return [
            {
                "since_param": self.since_param,
                "until_param": self.until_param,
                "since": self.used_parameters.get(self.since_param, ""),
                "until": self.used_parameters.get(self.until_param, ""),
                "kept": [
                    (key, value)
                    for key, values in changelist.filter_params.items()
                    if key not in (self.since_param, self.until_param)
                    for value in values
                ],
                "clear_url": changelist.get_query_string(remove=[self.since_param, self.until_param]),
            }
        ]

    def queryset(self, request, queryset):
        since, until = self.dates.get(self.since_param), self.dates.get(self.until_param)
        if since and until and until < since:
            raise IncorrectLookupParameters("The end date is before the start date.")
        zone = timezone.get_current_timezone()
        if since:
            start = datetime.datetime.combine(since, datetime.time.min, tzinfo=zone)
            queryset = queryset.filter(**{f"{self.field_path}__gte": start})
        if until:
            end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
            queryset = queryset.filter(**{f"{self.field_path}__lt": end})
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, ExportMixin, admin.ModelAdmin):
    """The append-only audit log: anyone with the view permission may read and export it; nobody may change it.

    Each event reads as a sentence (`portal.auditsentences`); its page adds the before/after of the
    fields it changed. Filters: actor, event type, target type, dates (a from/to range; the date
    hierarchy above the list picks a year, month or day); links from other pages narrow it to one
    object (`?target=app.Model:id`) or one person (`?person=<employee id>`).
    """

    formats = [CSV, XLSX]
    resource_classes = [AuditEventResource]
    list_display = ("created_at", "sentence", "action", "target_type")
    list_display_links = ("created_at",)
    list_filter = (
        AuditActorFilter,
        "action",
        "target_type",
        ("created_at", AuditDateRangeFilter),
        AuditTargetFilter,
        AuditPersonFilter,
    )
    search_fields = ("personal__actor_repr", "personal__target_repr", "=target_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    list_per_page = 100
    show_full_result_count = False
    fields = (
        "seq", "created_at", "sentence", "actor", "actor_repr", "action", "target_type", "target_id", "target_repr",
        "changes", "pretty_detail", "trail",
        "prev_hash", "hash",
    )  # fmt: skip
    readonly_fields = fields

    def get_changelist(self, request, **kwargs):
        return AuditSentenceChangeList

    @admin.display(description="event")
    def sentence(self, obj):
        pieces = getattr(obj, "_sentence", None)
        if pieces is None:
            pieces = describe_one(obj)
        return sentence_html(pieces)

    @admin.display(description="before and after")
    def changes(self, obj):
        return changes_html(obj)

    @admin.display(description="audit trail")
    def trail(self, obj):
        url = reverse("admin:portal_auditevent_changelist")
        return format_html(
            '<a href="{}?target={}">{}</a>',
            url,
            url_quote(f"{obj.target_type}:{obj.target_id}", safe=""),
            f"Every event about {obj.target_repr or obj.target_type}",
        )

    @admin.display(description="detail")
    def pretty_detail(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.detail, indent=2, sort_keys=True, default=str))


@admin.register(AuditEventPersonal)
class AuditEventPersonalAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """The audit log's readable values apart from the chain (what the retention purge redacts), read only."""

    list_display = ("event_id", "actor_repr", "target_repr", "redacted_at")
    list_filter = (("redacted_at", admin.EmptyFieldListFilter),)
    search_fields = ("actor_repr", "target_repr", "=event__id")
    ordering = ("-event_id",)
    list_per_page = 100
    show_full_result_count = False
    fields = ("event", "actor_repr", "target_repr", "detail", "redacted_at")
    readonly_fields = fields


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """Signed checkpoints of the audit chain (`manage.py audit_checkpoint_export` writes them out), read only."""

    list_display = ("seq", "created_at", "key_id", "hash")
    ordering = ("-seq", "-id")
    list_per_page = 100
    show_full_result_count = False
    fields = ("seq", "hash", "created_at", "key_id", "signature")
    readonly_fields = fields


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """The audit chain's last link (what the next event chains to), read only."""

    list_display = ("seq", "hash")
    show_full_result_count = False
    fields = ("seq", "hash")
    readonly_fields = fields


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """The email outbox, for IT to read: what was sent to whom, and what was not (failed, or unconfirmed).

    Read-only for everyone with the view permission: rows change only through `portal.mail`. An
    `unconfirmed` row shows its Message-ID to look up in the mail server's log.
    """

    list_display = ("created_at", "short_recipients", "subject", "status", "sent_at", "attempts", "short_error")
    list_filter = ("status", "template", ("created_at", admin.DateFieldListFilter))
    search_fields = ("recipients", "subject")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    list_per_page = 100
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "created_at",
        "status",
        "template",
        "message_id",
        "from_email",
        "recipients",
        "reply_to",
        "subject",
        "body",
        "html",
        "attempts",
        "claimed_at",
        "handed_at",
        "sent_at",
        "next_attempt_at",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description="to", ordering="recipients")
    def short_recipients(self, obj):
        return ", ".join(obj.to)

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.last_error if len(obj.last_error) <= 80 else f"{obj.last_error[:77]}..."

    @admin.display(description="Message-ID")
    def message_id(self, obj):
        return obj.message_id


class EventSubscriberForm(forms.ModelForm):
    """The subscriber's events as checkboxes; the secret masked once saved (left masked, it is kept)."""

    MASK = "••••••••"

    events = forms.MultipleChoiceField(
        choices=EventType.choices, widget=forms.CheckboxSelectMultiple, help_text="The events it receives."
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        help_text="HMAC-SHA256 key shared with the receiver (at least 16 characters). Shown masked once saved; "
        "leave the mask to keep it.",
    )

    class Meta:
        model = EventSubscriber
        fields = ["name", "url", "events", "secret", "secret_env", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.secret:
            self.initial["secret"] = self.MASK

    def clean_secret(self):
        value = self.cleaned_data.get("secret", "")
        return self.instance.secret if value == self.MASK and self.instance.pk else value

    def clean(self):
        cleaned = super().clean()
        candidate = EventSubscriber(
            secret=cleaned.get("secret", ""),
            secret_env=cleaned.get("secret_env", ""),
            events=cleaned.get("events") or [],
        )
        try:
            events.event_subscriber_check(candidate)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned


@admin.register(EventSubscriber)
class EventSubscriberAdmin(ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """Systems told of lifecycle events (signed POSTs). Saved and deleted through `portal.events`, audited."""

    form = EventSubscriberForm
    list_display = ("name", "url", "event_list", "active", "updated_at")
    list_filter = ("active",)
    search_fields = ("name", "url")
    ordering = ("name",)

    @admin.display(description="events")
    def event_list(self, obj):
        return ", ".join(obj.events or [])

    def save_model(self, request, obj, form, change):
        events.event_subscriber_save(subscriber=obj, acting_user=request.user)

    def delete_model(self, request, obj):
        events.event_subscriber_delete(subscriber=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            events.event_subscriber_delete(subscriber=obj, acting_user=request.user)


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyRecordMixin, ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """The delivery log: each event for each subscriber, its status, attempts, answer and last error.
    Read-only; "Send again" queues a failed delivery once more, with the same event id."""

    list_display = (
        "created_at",
        "event_type",
        "subscriber",
        "status",
        "attempts",
        "response_code",
        "delivered_at",
        "short_error",
    )
    list_select_related = ("subscriber",)
    list_filter = ("status", "event_type", "subscriber", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=event_id",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    list_per_page = 100
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = (
        "created_at",
        "event_type",
        "event_id",
        "subscriber",
        "status",
        "attempts",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
        "response_code",
        "last_error",
        "pretty_payload",
    )
    readonly_fields = fields
    actions = ["send_again"]

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.last_error if len(obj.last_error) <= 80 else f"{obj.last_error[:77]}..."

    @admin.display(description="payload")
    def pretty_payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    def has_send_permission(self, request):
        return request.user.has_perm("portal.view_eventdelivery") and request.user.has_perm(
            "portal.change_eventsubscriber"
        )

    @admin.action(description="Send the selected failed deliveries again (same event id)", permissions=["send"])
    def send_again(self, request, queryset):
        done, skipped = [], []
        for delivery in queryset.select_related("subscriber"):
            label = f"{delivery.event_type} → {delivery.subscriber}"
            (done if events.event_delivery_retry(delivery=delivery) else skipped).append(label)
        report_action_results(
            self,
            request,
            done_message="Queued again",
            done=done,
            failed=[(label, "only a failed delivery is sent again") for label in skipped],
        )


# --- Second-factor devices (portal.mfa) -------------------------------------------------------------


class SecondFactorDeviceAdmin(ScopedAdminMixin, UnreadableQueryMixin, admin.ModelAdmin):
    """A second-factor device: listed and viewed (never its secret), removed by who may delete it (IT admin).

    No adding or editing here: a person enrols their own device after signing in. Removal goes through
    `portal.mfa.second_factor_device_remove` (audited; a session it verified is verified no longer), one
    device at a time or with the list's delete action.
    """

    list_display = ("user", "name", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name", "name")
    list_filter = (("created_at", admin.DateFieldListFilter),)
    ordering = ("user__username", "pk")
    show_full_result_count = False
    fields = ("user", "name", "created_at", "last_used_at")
    readonly_fields = fields

    def get_base_queryset(self, request):
        return super().get_base_queryset(request).filter(confirmed=True)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        from portal.mfa import second_factor_device_remove

        second_factor_device_remove(device=obj, acting_user=request.user)

    def delete_queryset(self, request, queryset):
        from portal.mfa import second_factor_device_remove

        for device in queryset.select_related("user"):
            second_factor_device_remove(device=device, acting_user=request.user)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(SecondFactorDeviceAdmin):
    """Authenticator apps (TOTP); django-otp's own admin, which can show the secret as a QR code, is not used."""


@admin.register(WebAuthnCredential)
class PasskeyAdmin(SecondFactorDeviceAdmin):
    """Passkeys (WebAuthn credentials)."""


@admin.register(RecoveryCodeDevice)
class RecoveryCodeDeviceAdmin(SecondFactorDeviceAdmin):
    """Recovery code sets; the codes themselves are stored hashed and shown to their owner once."""

    list_display = ("user", "codes_left", "created_at", "last_used_at")
    fields = ("user", "codes_left", "created_at", "last_used_at")
    readonly_fields = fields

    def get_base_queryset(self, request):
        return super().get_base_queryset(request).annotate(unused_codes=Count("codes"))

    @admin.display(description="unused codes", ordering="unused_codes")
    def codes_left(self, obj):
        return obj.unused_codes
