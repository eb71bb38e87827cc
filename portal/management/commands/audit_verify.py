"""`python manage.py audit_verify [--checkpoints FILE]`: recompute the audit chain; exit 1 when it was tampered with."""

import json

from django.core.management.base import BaseCommand, CommandError

from portal.auditchain import audit_verify, checkpoint_parse


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chain, its personal-value commitments and its signed checkpoints, "
        "in bounded memory. Names the first event that was edited, deleted, inserted or reordered and exits "
        "with status 1; 0 when everything verifies."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoints",
            metavar="FILE",
            help="Also check the checkpoints in this export (from audit_checkpoint_export), kept outside the database.",
        )
        parser.add_argument("--chunk", type=int, default=5000, help="Events read per query (default 5000).")

    def handle(self, *args, checkpoints=None, chunk=5000, **options):
        if chunk < 1:
            raise CommandError("--chunk must be at least 1.")
        exported = _read_export(checkpoints) if checkpoints else []
        report = audit_verify(exported=exported, chunk=chunk)
        for warning in report.warnings:
            self.stderr.write(f"Warning: {warning}")
        span = f"seq {report.first_seq} to {report.last_seq}" if report.events else "none"
        summary = (
            f"{report.events} events ({span}), {report.checkpoints} checkpoints, "
            f"{report.redacted} values redacted by the retention purge."
        )
        if report.ok:
            self.stdout.write(f"The audit log verifies: {summary}")
            return
        self.stdout.write(f"The audit log does NOT verify: {report.problems_total} problems in {summary}")
        for problem in report.problems:
            self.stdout.write(f"- [{problem.kind}] {problem.message}")
        if report.problems_total > len(report.problems):
            self.stdout.write(f"... and {report.problems_total - len(report.problems)} more.")
        raise CommandError(f"First problem: {report.problems[0].message}", returncode=1)


def _read_export(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise CommandError(f"Cannot read the checkpoint export {path}: {exc.strerror}.") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(checkpoint_parse(json.loads(line), f"{path} line {number}"))
        except ValueError as exc:  # json.JSONDecodeError is one
            message = str(exc) if str(exc).startswith(path) else f"{path} line {number}: not JSON ({exc})."
            raise CommandError(message) from exc
    return rows
