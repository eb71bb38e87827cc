"""The audit log's hash chain: appending events, signed checkpoints, and verification.

Each event's `hash` is SHA-256 over the previous event's hash and the event's canonical line
(`event_line`: sorted-key JSON of an explicit field list, versioned by `chain_version`). The values that
may name a person enter the line only as commitments, HMAC-SHA256 keyed with a random salt kept beside
the value in `AuditEventPersonal`; the retention purge redacts a value by rewriting it and dropping its
salt, and the chain still verifies. Appends are serialised: on PostgreSQL by a row lock on
`AuditChainHead` taken in the inserting transaction (a trigger moves the head with each insert), on
SQLite by its write lock (transactions begin IMMEDIATE). Checkpoints sign "the chain at seq N ends in
hash H" with the Ed25519 key in `PORTAL_AUDIT_SIGNING_KEY`; without a key none are made (refused with
a message), and `audit_verify` says the chain alone could have been recomputed by whoever can write
the database. README: "Audit log".
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from portal.audit_keys import key_id, signing_key_load, verify_keys_load
from portal.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditEventPersonal

VERSION = 1
GENESIS = "0" * 64
# (name in the canonical line, cleartext field, salt field, commitment field on AuditEvent)
COMMITTED = (
    ("actor", "actor_repr", "actor_salt", "actor_commitment"),
    ("target", "target_repr", "target_salt", "target_commitment"),
    ("detail", "detail", "detail_salt", "detail_commitment"),
)
LABELS = {"actor": "actor name", "target": "target description", "detail": "detail"}
CHECKPOINT_PREFIX = "portal-audit-checkpoint/1\n"


class AuditChainError(Exception):
    """A checkpoint cannot be made (no key, an empty log, or a tail that does not verify)."""


# --- Canonical form ------------------------------------------------------------------------------


def _dump(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def value_text(name: str, value) -> str:
    """The text a commitment covers: the string itself, or the detail as canonical JSON."""
    return _dump(value if value is not None else {}) if name == "detail" else (value or "")


def commitment(salt: str, name: str, value) -> str:
    """HMAC-SHA256 keyed with the salt over "<name>\\0<value>": hides the value, binds it to this event."""
    return hmac.digest(bytes.fromhex(salt), f"{name}\0{value_text(name, value)}".encode(), "sha256").hex()


def timestamp(moment: datetime.datetime) -> str:
    """UTC, to the microsecond: 2026-12-04T18:00:00.000000Z."""
    if moment.utcoffset():
        moment = moment.astimezone(datetime.UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def event_line(
    *, version, seq, created_at, action, target_type, target_id, actor_commitment, target_commitment, detail_commitment
) -> str:
    """The canonical form of one event (version 1): what its hash covers, besides the previous hash."""
    if version != VERSION:
        raise ValueError(f"Unknown audit chain version {version}.")
    return _dump(
        {
            "v": version,
            "seq": seq,
            "at": timestamp(created_at),
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "actor": actor_commitment,
            "target": target_commitment,
            "detail": detail_commitment,
        }
    )


def link(prev_hash: str, line: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{line}".encode()).hexdigest()


def chain_fill(row, personal, *, seq: int, prev_hash: str, created_at: datetime.datetime) -> str:
    """Give `row` (an AuditEvent or a dict of its columns) its place in the chain; return its hash.

    `personal` (an AuditEventPersonal or a dict) gets fresh salts. The one place an event is sealed:
    appends, the backfill migration and the scale seeder all call it.
    """
    get = dict.get if isinstance(personal, dict) else getattr
    put = dict.__setitem__ if isinstance(personal, dict) else setattr
    put_row = dict.__setitem__ if isinstance(row, dict) else setattr
    get_row = dict.get if isinstance(row, dict) else getattr
    commitments = {}
    for name, value_field, salt_field, commit_field in COMMITTED:
        salt = secrets.token_hex(16)
        put(personal, salt_field, salt)
        commitments[commit_field] = commitment(salt, name, get(personal, value_field))
        put_row(row, commit_field, commitments[commit_field])
    line = event_line(
        version=VERSION,
        seq=seq,
        created_at=created_at,
        action=get_row(row, "action"),
        target_type=get_row(row, "target_type"),
        target_id=get_row(row, "target_id"),
        **commitments,
    )
    digest = link(prev_hash, line)
    for key, value in (
        ("seq", seq),
        ("created_at", created_at),
        ("chain_version", VERSION),
        ("prev_hash", prev_hash),
        ("hash", digest),
    ):
        put_row(row, key, value)
    return digest


# --- Appending -----------------------------------------------------------------------------------


def _head_lock(using: str) -> tuple[int, str]:
    """(seq, hash) of the chain's last event, locked until the end of the transaction."""
    if connections[using].vendor == "sqlite":
        # The transaction began IMMEDIATE: it holds SQLite's write lock, no other writer can append.
        return _last_event(using)
    head = AuditChainHead.objects.using(using).select_for_update().filter(pk=1).values_list("seq", "hash").first()
    if head is None:  # a flushed test database, or the first append ever
        seq, digest = _last_event(using)
        try:
            with transaction.atomic(using=using):
                AuditChainHead.objects.using(using).create(pk=1, seq=seq, hash=digest)
        except IntegrityError:
            pass  # another writer made it first; the lock below waits for it
        head = AuditChainHead.objects.using(using).select_for_update().filter(pk=1).values_list("seq", "hash").first()
    return head


def _last_event(using: str) -> tuple[int, str]:
    last = AuditEvent._base_manager.using(using).order_by("-seq").values_list("seq", "hash").first()
    return last or (0, GENESIS)


def events_append(events: list[AuditEvent], *, using: str = "default") -> None:
    """Append unsaved events to the chain, in order, in the caller's transaction (or one of their own).

    Two queries more than plain inserts: the head lock (or SQLite's last event) and the personal values
    (500 rows per statement). All the events get the same `created_at`, taken under the lock, so times
    never go backwards along the chain.
    """
    if not events:
        return
    with transaction.atomic(using=using, savepoint=False):
        seq, prev = _head_lock(using)
        now = timezone.now()
        personals = []
        for event in events:
            personal = event._personal()
            seq += 1
            prev = chain_fill(event, personal, seq=seq, prev_hash=prev, created_at=now)
            personals.append(personal)
        AuditEvent.objects.using(using).bulk_create(events, batch_size=500)
        for event, personal in zip(events, personals, strict=True):
            personal.event = event
        AuditEventPersonal.objects.using(using).bulk_create(personals, batch_size=500)


def chain_seal_rows(rows: list[dict], *, using: str = "default") -> list[dict]:
    """Seal raw event rows for a bulk writer (the scale seeder, the benchmark); return their personal rows.

    Each row is a dict of AuditEvent columns with its `id`, `action`, `target_type`, `target_id` and
    `created_at`, plus `actor_repr`, `target_repr` and `detail`, which move to the personal row. The
    caller writes both lists in the same transaction as this call (which locks the chain head).
    """
    if connections[using].in_atomic_block is False:
        raise RuntimeError("chain_seal_rows must run inside the transaction that writes the rows.")
    seq, prev = _head_lock(using)
    personals = []
    for row in rows:
        personal = {
            "event_id": row["id"],
            "actor_repr": row.pop("actor_repr", ""),
            "target_repr": row.pop("target_repr", ""),
            # As audit_record stores it: dates, decimals and UUIDs as their JSON text.
            "detail": json.loads(json.dumps(row.pop("detail", {}) or {}, cls=DjangoJSONEncoder)),
        }
        seq += 1
        prev = chain_fill(row, personal, seq=seq, prev_hash=prev, created_at=row["created_at"])
        personals.append(personal)
    return personals


# --- Checkpoints -----------------------------------------------------------------------------------


def checkpoint_statement(*, seq: int, digest: str, created_at: datetime.datetime, key: str) -> bytes:
    """What a checkpoint's signature covers."""
    return (CHECKPOINT_PREFIX + _dump({"seq": seq, "hash": digest, "at": timestamp(created_at), "key": key})).encode()


def verifying_keys() -> dict:
    """key id -> public key: the signing key's own and the retired ones in PORTAL_AUDIT_VERIFY_KEYS."""
    keys = verify_keys_load(settings.PORTAL_AUDIT_VERIFY_KEYS)
    private = signing_key_load(settings.PORTAL_AUDIT_SIGNING_KEY)
    if private is not None:
        keys.append(private.public_key())
    return {key_id(key): key for key in keys}


NO_KEY = (
    "No checkpoint made: PORTAL_AUDIT_SIGNING_KEY is not set. Make a key with "
    "`python manage.py audit_signing_key`, set it in the environment and restart."
)


def audit_checkpoint_create(*, now: datetime.datetime | None = None) -> tuple[AuditCheckpoint, bool]:
    """Sign the chain's current end; (checkpoint, created). Idempotent: an end already signed is returned.

    Refuses (AuditChainError, in plain words) without a signing key, on an empty log, and when the events
    since the last checkpoint do not verify: a checkpoint must never vouch for a tampered log.
    """
    private = signing_key_load(settings.PORTAL_AUDIT_SIGNING_KEY)
    if private is None:
        raise AuditChainError(NO_KEY)
    seq, digest = _last_event("default")
    if seq == 0:
        raise AuditChainError("No checkpoint made: the audit log is empty.")
    existing = AuditCheckpoint.objects.filter(seq=seq, hash=digest).first()
    if existing is not None:
        return existing, False
    report = audit_verify(since_last_checkpoint=True)
    if not report.ok:
        raise AuditChainError(f"No checkpoint made: the audit log does not verify. {report.problems[0].message}")
    created_at = now or timezone.now()
    key = key_id(private.public_key())
    signature = private.sign(checkpoint_statement(seq=seq, digest=digest, created_at=created_at, key=key)).hex()
    checkpoint = AuditCheckpoint.objects.create(
        seq=seq, hash=digest, created_at=created_at, key_id=key, signature=signature
    )
    return checkpoint, True


def checkpoint_export_rows() -> Iterator[dict]:
    """Every checkpoint, oldest first, as a JSON-ready dict (what `audit_checkpoint_export` writes)."""
    for row in AuditCheckpoint.objects.order_by("seq", "id").values("seq", "hash", "created_at", "key_id", "signature"):
        yield {**row, "created_at": timestamp(row["created_at"])}


def checkpoint_parse(row: dict, where: str) -> dict:
    """One exported checkpoint read back; ValueError naming `where` when it is not one."""
    try:
        return {
            "seq": int(row["seq"]),
            "hash": str(row["hash"]),
            "created_at": datetime.datetime.fromisoformat(str(row["created_at"]).replace("Z", "+00:00")),
            "key_id": str(row["key_id"]),
            "signature": str(row["signature"]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not an exported audit checkpoint ({exc}).") from exc


# --- Verification ----------------------------------------------------------------------------------


@dataclass
class Problem:
    kind: str  # edited, deleted, inserted, reordered, checkpoint
    message: str
    seq: int | None = None
    event_id: int | None = None


@dataclass
class Report:
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    redacted: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def add(self, problem: Problem, keep: int = 50) -> None:
        self.problems_total += 1
        if len(self.problems) < keep:
            self.problems.append(problem)


COLUMNS = (
    "id",
    "seq",
    "created_at",
    "action",
    "target_type",
    "target_id",
    "actor_commitment",
    "target_commitment",
    "detail_commitment",
    "chain_version",
    "prev_hash",
    "hash",
    "personal__event_id",
    "personal__actor_repr",
    "personal__actor_salt",
    "personal__target_repr",
    "personal__target_salt",
    "personal__detail",
    "personal__detail_salt",
    "personal__redacted_at",
)


def _rows(after: int, chunk: int) -> Iterator[tuple]:
    """Every event after seq `after`, in seq order, `chunk` at a time (keyset pages: bounded memory)."""
    while True:
        page = list(AuditEvent._base_manager.filter(seq__gt=after).order_by("seq").values_list(*COLUMNS)[:chunk])
        yield from page
        if len(page) < chunk:
            return
        after = page[-1][1]


def _name(seq, event_id) -> str:
    return f"event seq {seq} (id {event_id})"


def _checkpoint_problems(checkpoint: dict, keys: dict, report: Report, source: str) -> bool:
    """Check one checkpoint's signature; False (and a problem or warning) when it cannot be trusted."""
    label = f"checkpoint at seq {checkpoint['seq']} ({source})"
    key = keys.get(checkpoint["key_id"])
    if key is None:
        report.add(
            Problem(
                "checkpoint",
                f"{label} was signed by key {checkpoint['key_id']}, which is not configured "
                "(PORTAL_AUDIT_SIGNING_KEY or PORTAL_AUDIT_VERIFY_KEYS): its signature cannot be checked.",
                checkpoint["seq"],
            )
        )
        return False
    statement = checkpoint_statement(
        seq=checkpoint["seq"], digest=checkpoint["hash"], created_at=checkpoint["created_at"], key=checkpoint["key_id"]
    )
    try:
        key.verify(bytes.fromhex(checkpoint["signature"]), statement)
    except Exception:  # noqa: BLE001 - InvalidSignature, or a signature that is not even hex
        report.add(
            Problem(
                "checkpoint",
                f"{label}: its signature does not match its content: the checkpoint was edited or forged.",
                checkpoint["seq"],
            )
        )
        return False
    return True


def _diagnose_link(row_seq, row_id, prev_hash, prev_seq, prev_id) -> Problem:
    """An event that does not chain to the one before it: find what it does chain to, and say what happened."""
    linked = AuditEvent._base_manager.filter(hash=prev_hash).order_by("seq").values_list("seq", "id").first()
    name = _name(row_seq, row_id)
    if linked is None:
        return Problem(
            "inserted",
            f"{name} does not chain to {_name(prev_seq, prev_id)} nor to any other event: "
            "it was inserted (or the event before it was rewritten).",
            row_seq,
            row_id,
        )
    linked_seq, linked_id = linked
    if linked_seq >= row_seq:
        return Problem(
            "reordered",
            f"{name} was written after {_name(linked_seq, linked_id)}, yet comes before it: the order was changed.",
            row_seq,
            row_id,
        )
    first = AuditEvent._base_manager.filter(seq__gt=linked_seq).order_by("seq").values_list("seq", "id").first()
    return Problem(
        "inserted",
        f"{_name(*first)} was inserted: {name} was written right after {_name(linked_seq, linked_id)}.",
        first[0],
        first[1],
    )


def audit_verify(*, exported: Iterable[dict] = (), chunk: int = 5000, since_last_checkpoint: bool = False) -> Report:
    """Recompute the chain, the commitments and the checkpoints; name what was edited, deleted, inserted or reordered.

    Streams the events in seq order, `chunk` at a time, so memory does not grow with the log.
    `exported`: checkpoints read back from an export kept elsewhere, checked like the database's own
    (and each must still be in the database). `since_last_checkpoint`: start from the newest checkpoint
    whose signature verifies (what `audit_checkpoint_create` checks before it signs).
    """
    report = Report()
    keys = verifying_keys()
    stored = [
        {**row, "source": "database"}
        for row in AuditCheckpoint.objects.order_by("seq", "id").values(
            "seq", "hash", "created_at", "key_id", "signature"
        )
    ]
    outside = [{**row, "source": "export"} for row in exported]
    in_db = {(row["seq"], row["hash"], row["signature"]) for row in stored}
    for row in outside:
        if (row["seq"], row["hash"], row["signature"]) not in in_db:
            report.add(
                Problem("checkpoint", f"The exported checkpoint at seq {row['seq']} is missing from the database.")
            )
    trusted = []
    for row in sorted(stored + outside, key=lambda r: r["seq"]):
        report.checkpoints += 1
        if _checkpoint_problems(row, keys, report, row["source"]):
            trusted.append(row)
    if not stored and not outside:
        report.warnings.append(
            "No signed checkpoints: the chain shows edits, deletions and insertions, but whoever can write the "
            "database could recompute every hash. Set PORTAL_AUDIT_SIGNING_KEY so checkpoints are made."
        )

    prev_seq, prev_hash, prev_id = 0, GENESIS, None
    if since_last_checkpoint and trusted:
        start = trusted[-1]
        prev_seq, prev_hash = start["seq"], start["hash"]
        trusted = [start]
        prev_id = AuditEvent._base_manager.filter(seq=prev_seq).values_list("id", flat=True).first()
    pending = iter(trusted)
    checkpoint = next(pending, None)
    while checkpoint is not None and checkpoint["seq"] < prev_seq:
        checkpoint = next(pending, None)
    if checkpoint is not None and checkpoint["seq"] == prev_seq and prev_seq:
        stored_hash = AuditEvent._base_manager.filter(seq=prev_seq).values_list("hash", flat=True).first()
        if stored_hash != checkpoint["hash"]:
            report.add(
                Problem("checkpoint", f"The events up to seq {prev_seq} no longer match its checkpoint.", prev_seq)
            )
        checkpoint = next(pending, None)
    last_good_checkpoint = prev_seq

    for row in _rows(prev_seq, chunk):
        (event_id, seq, created_at, action, target_type, target_id, c_actor, c_target, c_detail, version,
         stored_prev, digest, personal_id, actor_repr, actor_salt, target_repr, target_salt, detail, detail_salt,
         redacted_at) = row  # fmt: skip
        report.events += 1
        report.first_seq = report.first_seq or seq
        name = _name(seq, event_id)
        # 1. No gap, 2. chained to the event before, 3. its own hash.
        if seq != prev_seq + 1:
            missing = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1} to {seq - 1}"
            report.add(Problem("deleted", f"Events were deleted: {missing}, just before {name}.", prev_seq + 1))
        elif stored_prev != prev_hash:
            report.add(_diagnose_link(seq, event_id, stored_prev, prev_seq, prev_id))
        try:
            line = event_line(
                version=version,
                seq=seq,
                created_at=created_at,
                action=action,
                target_type=target_type,
                target_id=target_id,
                actor_commitment=c_actor,
                target_commitment=c_target,
                detail_commitment=c_detail,
            )
            recomputed = link(stored_prev, line)
        except ValueError as exc:
            recomputed = f"unreadable: {exc}"
        if recomputed != digest:
            report.add(
                Problem(
                    "edited",
                    f"{name} was changed after it was written: its hash does not match its content.",
                    seq,
                    event_id,
                )
            )
        # 4. The personal values still match their commitments (or were redacted by the purge).
        if personal_id is None:
            report.add(Problem("deleted", f"The personal values of {name} were deleted.", seq, event_id))
        else:
            for label, value, salt, commit in (
                ("actor", actor_repr, actor_salt, c_actor),
                ("target", target_repr, target_salt, c_target),
                ("detail", detail, detail_salt, c_detail),
            ):
                if not salt:
                    if redacted_at is None:
                        report.add(
                            Problem(
                                "edited",
                                f"The {LABELS[label]} of {name} lost its salt without a redaction.",
                                seq,
                                event_id,
                            )
                        )
                    else:
                        report.redacted += 1
                elif commitment(salt, label, value) != commit:
                    report.add(
                        Problem(
                            "edited",
                            f"The {LABELS[label]} of {name} was changed after it was recorded.",
                            seq,
                            event_id,
                        )
                    )
        # 5. Checkpoints at this seq.
        while checkpoint is not None and checkpoint["seq"] <= seq:
            if checkpoint["seq"] == seq:
                if checkpoint["hash"] != digest:
                    report.add(
                        Problem(
                            "checkpoint",
                            f"{name} does not end the chain its signed checkpoint vouches for: events after "
                            f"seq {last_good_checkpoint} up to seq {seq} were rewritten and re-hashed.",
                            seq,
                            event_id,
                        )
                    )
                else:
                    last_good_checkpoint = seq
            checkpoint = next(pending, None)
        prev_seq, prev_hash, prev_id = seq, digest, event_id

    report.last_seq = prev_seq
    if checkpoint is not None:
        report.add(
            Problem(
                "deleted",
                f"The log ends at seq {prev_seq}, but a signed checkpoint vouches for seq {checkpoint['seq']}: "
                f"events after seq {prev_seq} were deleted.",
                prev_seq + 1,
            )
        )
    if connections["default"].vendor != "sqlite" and not since_last_checkpoint:
        head = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first()
        if head is not None and head > prev_seq:
            report.add(
                Problem(
                    "deleted",
                    f"The log ends at seq {prev_seq}, but the chain head says {head}: "
                    f"events after seq {prev_seq} were deleted.",
                    prev_seq + 1,
                )
            )
    return report
