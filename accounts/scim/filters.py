"""SCIM filters and sortBy turned into one database query (never a filter applied to a page afterwards).

scim2-models parses and checks the filter against the published schema; here each comparison on an
attribute Portal maps becomes a `Q` on its column, case-insensitive where RFC 7643 says the attribute
is not case-exact (`caseExact: false`: userName, names, title, department ...). An attribute Portal
keeps but cannot filter on (emails, groups) is refused with `invalidFilter`, naming what can be filtered.
"""

import datetime
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from scim2_models import InvalidFilterException
from scim2_models.path import Comparison, LogicalExpr, Not, Present, ValuePath
from scim2_models.path.expressions import CompareOperator, LogicalOperator

from accounts.models import Employee, EmployeeStatus
from accounts.scim.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA


@dataclass(frozen=True)
class Column:
    """Where a SCIM attribute lives: an ORM path, its kind (str, int, bool, datetime, fk) and case rule."""

    path: str
    kind: str = "str"
    case_exact: bool = False


USER_COLUMNS = {
    "id": Column("pk", "int"),
    "externalid": Column("external_id", case_exact=True),
    "username": Column("work_email"),
    "name.givenname": Column("first_name"),
    "name.familyname": Column("last_name"),
    "nickname": Column("preferred_name"),
    "title": Column("title"),
    "active": Column("active", "bool"),
    "employeenumber": Column("employee_number"),
    "department": Column("department__name"),
    "costcenter": Column("department__cost_center"),
    "manager": Column("manager_id", "fk"),
    "manager.value": Column("manager_id", "fk"),
    "meta.created": Column("created_at", "datetime"),
    "meta.lastmodified": Column("updated_at", "datetime"),
}
GROUP_COLUMNS = {
    "id": Column("pk", "int"),
    "displayname": Column("name"),
    "externalid": Column("external_id", case_exact=True),
    "members": Column("member", "member"),
    "members.value": Column("member", "member"),
}
SCHEMAS = {USER_SCHEMA.lower(), ENTERPRISE_SCHEMA.lower(), GROUP_SCHEMA.lower()}


def _key(attr_path) -> str:
    uri = (attr_path.uri or "").lower()
    if uri and uri not in SCHEMAS:
        raise InvalidFilterException(detail=f"Portal knows no schema {attr_path.uri}.")
    name = attr_path.attr.lower()
    return f"{name}.{attr_path.sub_attr.lower()}" if attr_path.sub_attr else name


def active_q(today: datetime.date | None = None) -> Q:
    """Who reads as `active: true`: not terminated, and no last day today or earlier (a leaver cut off now)."""
    today = today or timezone.localdate()
    return (
        Q(scim_inactive=False)
        & ~Q(status=EmployeeStatus.TERMINATED)
        & (Q(end_date__isnull=True) | Q(end_date__gt=today))
    )


class FilterTranslator:
    """Turns a parsed SCIM filter into a `Q` over employees (Users) or roles (Groups)."""

    def __init__(self, columns: dict, *, username_domain: str = "") -> None:
        self.columns = columns
        self.username_domain = username_domain
        self.annotations: dict = {}

    def column(self, attr_path) -> Column:
        key = _key(attr_path)
        if key not in self.columns:
            names = ", ".join(sorted(k for k in self.columns if "." not in k or k.startswith(("name.", "meta."))))
            raise InvalidFilterException(detail=f"Portal cannot filter on {attr_path}; it filters on: {names}.")
        return self.columns[key]

    def q(self, node) -> Q:
        if isinstance(node, LogicalExpr):
            terms = [self.q(term) for term in node.terms]
            combined = terms[0]
            for term in terms[1:]:
                combined = combined & term if node.op == LogicalOperator.and_ else combined | term
            return combined
        if isinstance(node, Not):
            return ~self.q(node.expr)
        if isinstance(node, Present):
            return self.present(self.column(node.attr_path))
        if isinstance(node, Comparison):
            return self.compare(node, self.column(node.attr_path))
        if isinstance(node, ValuePath):
            key = _key(node.attr_path)
            inner = node.val_filter
            if key == "members" and isinstance(inner, Comparison) and _key(inner.attr_path) == "value":
                return self.compare(inner, self.columns["members"])
            raise InvalidFilterException(detail=f"Portal cannot filter inside {node.attr_path}[...].")
        raise InvalidFilterException(detail="This filter cannot be evaluated.")

    def present(self, column: Column) -> Q:
        if column.kind == "bool":
            return Q(pk__isnull=False)  # active always has a value
        if column.kind == "member":
            return Q(Exists(Employee.objects.filter(role_id=OuterRef("pk"))))
        if column.kind in ("str",):
            return Q(**{f"{column.path}__isnull": False}) & ~Q(**{column.path: ""})
        return Q(**{f"{column.path}__isnull": False})

    def compare(self, node: Comparison, column: Column) -> Q:
        op, value = node.op, node.value
        if column.kind == "bool":
            if op not in (CompareOperator.eq, CompareOperator.ne) or not isinstance(value, bool):
                raise InvalidFilterException(detail=f"{node.attr_path} is true or false: compare it with eq or ne.")
            q = active_q() if value else ~active_q()
            return q if op == CompareOperator.eq else ~q
        if value is None:
            q = ~self.present(column)
            if op == CompareOperator.eq:
                return q
            if op == CompareOperator.ne:
                return ~q
            raise InvalidFilterException(detail=f"null can only be compared with eq or ne, not {op}.")
        if column.kind in ("int", "fk", "member"):
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise InvalidFilterException(detail=f"{node.attr_path} is an id: compare it with eq or ne.")
            try:
                number = int(str(value))
            except ValueError:
                q = Q(pk__in=[])  # no resource has a non-numeric id
            else:
                if column.kind == "member":
                    q = Q(Exists(Employee.objects.filter(role_id=OuterRef("pk"), pk=number, scim_removed_at=None)))
                else:
                    q = Q(**{column.path: number})
            return q if op == CompareOperator.eq else ~q
        if column.kind == "datetime":
            moment = value if isinstance(value, datetime.datetime) else parse_datetime(str(value))
            if moment is None:
                raise InvalidFilterException(detail=f"{value!r} is not a date and time (e.g. 2026-01-31T09:00:00Z).")
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment, datetime.UTC)
            lookups = {"eq": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte", "ne": "exact"}
            if op not in lookups:
                raise InvalidFilterException(
                    detail=f"{node.attr_path} is a date: compare it with eq, ne, gt, ge, lt or le."
                )
            q = Q(**{f"{column.path}__{lookups[op]}": moment})
            return ~q if op == CompareOperator.ne else q
        if not isinstance(value, str):
            raise InvalidFilterException(detail=f"{node.attr_path} is text: compare it with a quoted string.")
        if column.path == "work_email" and self.username_domain and "@" not in value and op == CompareOperator.eq:
            value = f"{value}@{self.username_domain}"
        return self.text(column, op, value)

    def lowered(self, column: Column):
        """The name of an annotation holding the column in lower case (what the lower-case indexes hold)."""
        alias = f"_scim_lower_{column.path.replace('__', '_')}"
        self.annotations[alias] = Lower(F(column.path))
        return alias

    def text(self, column: Column, op: CompareOperator, value: str) -> Q:
        ordering = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}.get(str(op.value))
        if column.case_exact:
            if ordering:
                return Q(**{f"{column.path}__{ordering}": value})
            lookup = {"eq": "exact", "ne": "exact", "co": "contains", "sw": "startswith", "ew": "endswith"}[op]
            q = Q(**{f"{column.path}__{lookup}": value})
        elif ordering:
            return Q(**{f"{self.lowered(column)}__{ordering}": Value(fold(value))})
        elif op in (CompareOperator.eq, CompareOperator.ne):
            # `LOWER(column) = 'value'`: answered by the column's lower-case index (userName's unique one).
            q = Q(**{self.lowered(column): Value(fold(value))})
        elif op == CompareOperator.sw:
            # A range over the lower-case value, not LIKE (which no index answers on SQLite, nor on an
            # expression in PostgreSQL without a pattern operator class): every value that starts with
            # the prefix, and only those, lies between it and it + the last code point.
            alias, prefix = self.lowered(column), fold(value)
            q = Q(**{f"{alias}__gte": Value(prefix), f"{alias}__lt": Value(prefix + "\U0010ffff")})
        else:  # co, ew: no index answers the middle or the end of a value
            q = Q(**{f"{column.path}__i{'contains' if op == CompareOperator.co else 'endswith'}": value})
        if op == CompareOperator.ne:
            # ne also matches a person without the attribute (RFC 7644 §3.4.2.2: "not equal").
            return ~q | Q(**{f"{column.path}__isnull": True})
        return q


def fold(value: str) -> str:
    """`value` in lower case as the database's LOWER() gives it: SQLite's lowers ASCII letters only."""
    if connection.vendor == "sqlite":
        return value.translate(_ASCII_LOWER)
    return value.lower()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


SORTABLE_USER = {k: v for k, v in USER_COLUMNS.items() if v.kind not in ("bool", "fk")}
SORTABLE_GROUP = {"id": Column("pk", "int"), "displayname": Column("name"), "externalid": GROUP_COLUMNS["externalid"]}


def order_by(sort_path, columns: dict, descending: bool) -> list:
    """The ORM ordering for `sortBy` (default: by id), always ending with the id so pages are stable."""
    if sort_path is None:
        return ["-pk" if descending else "pk"]
    key = str(sort_path).lower()
    for schema in SCHEMAS:
        key = key.removeprefix(f"{schema}:")
    if key not in columns:
        names = ", ".join(sorted(columns))
        raise InvalidFilterException(detail=f"Portal cannot sort by {sort_path}; it sorts by: {names}.")
    column = columns[key]
    expression = Lower(column.path) if column.kind == "str" and not column.case_exact else F(column.path)
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return [ordered, "-pk" if descending else "pk"]
