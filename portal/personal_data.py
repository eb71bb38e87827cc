"""Rewriting a person's identifying values wherever the database keeps a copy of them.

The retention purge (`offboarding.flows.retention`) decides *what* identifies a leaver; this module
finds and rewrites every copy, in every text and JSON column of every model Django knows
(history tables, the audit log, the admin log, django-q2's schedules and task names included), so
a table added later is covered without being listed here. It imports no Portal app.

Columns whose stored form is an encoding (`OPAQUE_COLUMNS`) cannot be searched with SQL; they are
dealt with by the caller (django-q2's results are deleted, sessions are deleted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast

# Stored as an encoding (pickle, signed pickle, signed session data): searched decoded by whoever
# handles them, never with LIKE. django-q2's queued payloads carry ids only (`portal.queue`).
OPAQUE_COLUMNS = frozenset(
    {
        ("django_q.Task", "args"),
        ("django_q.Task", "kwargs"),
        ("django_q.Task", "result"),
        ("django_q.OrmQ", "payload"),
        ("sessions.Session", "session_data"),
    }
)
# The audit chain's own columns: a model label and an id, hex digests. Never a person's data, and the
# table refuses UPDATE; its readable values are in portal.AuditEventPersonal, which is searched.
NOT_PERSONAL = frozenset(
    ("portal.AuditEvent", name)
    for name in (
        "target_type", "target_id", "actor_commitment", "target_commitment", "detail_commitment", "prev_hash", "hash",
    )
) | frozenset(("portal.AuditEventPersonal", name) for name in ("actor_salt", "target_salt", "detail_salt")) | frozenset(
    ("portal.AuditCheckpoint", name) for name in ("hash", "key_id", "signature")
) | frozenset((("portal.AuditChainHead", "hash"),))  # fmt: skip
# A value shorter than this is rewritten only where a whole column (or JSON string) equals it:
# as a substring, a short username or account id would match other people's text.
MIN_SUBSTRING = 8


@dataclass
class Replacements:
    """What to rewrite: `words` wherever they occur as a whole (not inside a longer word), case-insensitively;
    `exact` only where a column or a JSON string equals the value (case-insensitively)."""

    words: dict[str, str] = field(default_factory=dict)
    exact: dict[str, str] = field(default_factory=dict)

    def add(self, old: str, new: str, *, anywhere: bool = True) -> None:
        """Rewrite `old` as `new`: as a word anywhere when `anywhere` and it is long enough, else exact only."""
        old = (old or "").strip()
        if not old or old.lower() == new.lower():
            return
        if anywhere and len(old) >= MIN_SUBSTRING:
            self.words.setdefault(old, new)
        else:
            self.exact.setdefault(old, new)

    def __bool__(self) -> bool:
        return bool(self.words or self.exact)

    def search_terms(self) -> list[str]:
        """Every form to look for with SQL: each value and its JSON-escaped form (SQLite keeps `\\u` escapes)."""
        terms = []
        for value in [*self.words, *self.exact]:
            for form in (value, json.dumps(value)[1:-1]):
                if form not in terms:
                    terms.append(form)
        return terms

    def pattern(self) -> re.Pattern | None:
        if not self.words:
            return None
        # Longest first, so an email is replaced whole before a shorter value inside it.
        alternatives = "|".join(re.escape(old) for old in sorted(self.words, key=len, reverse=True))
        return re.compile(rf"(?<![\w.@+-])(?:{alternatives})(?![\w@-]|\.\w)", re.IGNORECASE)


def text_columns() -> Iterator[tuple[type[models.Model], models.Field]]:
    """(model, field) for every character, text and JSON column of every concrete model, opaque ones left out.

    Fields with `choices` are left out too: their values are fixed codes, never a person's data; so are
    the audit chain's digests (`NOT_PERSONAL`), and encrypted columns (`portal.fields`): SQL cannot search
    their ciphertext, and the model that owns them blanks them whole (and their blind indexes), e.g.
    `accounts.services.employees.employee_anonymise`.
    """
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.proxy or not opts.managed:
            continue
        for fld in opts.concrete_fields:
            if (
                (opts.label, fld.name) in OPAQUE_COLUMNS | NOT_PERSONAL
                or fld.choices
                or getattr(fld, "encrypted", False)
            ):
                continue
            if isinstance(fld, models.CharField | models.TextField | models.JSONField):
                yield model, fld


class _Rewriter:
    def __init__(self, replacements: Replacements):
        self.pattern = replacements.pattern()
        self.words = {old.lower(): new for old, new in replacements.words.items()}
        self.exact = {old.lower(): new for old, new in replacements.exact.items()}

    def text(self, value: str) -> str:
        if value.strip().lower() in self.exact:
            return self.exact[value.strip().lower()]
        if self.pattern is None:
            return value
        return self.pattern.sub(lambda match: self.words[match.group(0).lower()], value)

    def json(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.json(item) for key, item in value.items()}
        return value


def personal_data_rewrite(replacements: Replacements, *, only: frozenset[str] | None = None) -> dict[str, int]:
    """Rewrite every copy of the values in `replacements`, in every column `text_columns()` yields.

    Rows are found with one case-insensitive LIKE per column (JSON cast to text) and rewritten in
    Python, JSON structure kept; a row is written only when its value changes. Goes through each
    model's `_base_manager`. The audit log's readable values live in `AuditEventPersonal`, apart from
    the append-only chain: a rewrite there also clears the value's salt (`redaction_marks`), so the
    chain still verifies and the value is counted as redacted. Runs in the caller's
    transaction. `only` limits it to those models (labels, e.g. "portal.AuditEventPersonal"). A value too
    long for its column is cut to fit. Returns the rows changed per `app_label.Model.field`.
    """
    if not replacements:
        return {}
    rewriter = _Rewriter(replacements)
    terms = replacements.search_terms()
    changed: dict[str, int] = {}
    for model, fld in text_columns():
        if only is not None and model._meta.label not in only:
            continue
        limit = fld.max_length if isinstance(fld, models.CharField) and fld.max_length else None
        fitting = [term for term in terms if limit is None or len(term) <= limit]
        if not fitting:
            continue
        manager = model._base_manager
        if isinstance(fld, models.JSONField):
            rows = manager.annotate(_as_text=Cast(fld.name, models.TextField()))
            lookup = "_as_text__icontains"
        else:
            rows = manager.all()
            lookup = f"{fld.name}__icontains"
        match = Q()
        for term in fitting:
            match |= Q(**{lookup: term})
        count = 0
        for pk, value in rows.filter(match).values_list("pk", fld.name):
            new = rewriter.json(value) if isinstance(fld, models.JSONField) else rewriter.text(value)[:limit]
            if new != value:
                # A redactable copy (the audit log's personal values) also drops what proved the old value.
                marks = model.redaction_marks(fld.name) if hasattr(model, "redaction_marks") else {}
                manager.filter(pk=pk).update(**{fld.name: new, **marks})
                count += 1
        if count:
            changed[f"{model._meta.label}.{fld.name}"] = count
    return changed
