"""Usage feeds: Okta and Entra sign-in logs and per-application CSVs set last use, forward only."""

import datetime
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import TestCase

from accounts.models import EntitlementStatus, UnmatchedUsage, UsageImport, UsageSource
from accounts.services import usage
from accounts.services.usage import UsageFileError
from accounts.tests.factories import ApplicationFactory, EmployeeFactory, EntitlementFactory
from portal.models import AuditEvent

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def okta_event(email, app_label, published, *, event_type="user.authentication.sso", result="SUCCESS"):
    """A System Log event as Okta's /api/v1/logs returns it (trimmed of fields Portal does not read)."""
    return {
        "actor": {"id": "00u1abcd", "type": "User", "alternateId": email, "displayName": "Ada Lovelace"},
        "client": {"userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME"}},
        "authenticationContext": {"externalSessionId": "102abc", "authenticationStep": 0},
        "displayMessage": "User single sign on to app",
        "eventType": event_type,
        "outcome": {"result": result, "reason": None},
        "published": published,
        "severity": "INFO",
        "uuid": "9f0c2a5e-1111-11ef-8b0b-0b3c0c0c0c0c",
        "version": "0",
        "target": [
            {"id": "0oa1slack", "type": "AppInstance", "alternateId": app_label, "displayName": app_label},
            {"id": "0ua1user", "type": "AppUser", "alternateId": email, "displayName": "Ada Lovelace"},
        ],
    }


ENTRA_CSV_HEADER = (
    "Date (UTC),Request ID,User agent,Correlation ID,User ID,User,Username,User type,Cross tenant access type,"
    "Incoming token type,Authentication Protocol,Unique token identifier,Original transfer method,"
    "Client credential type,Token Protection - Sign In Session,Application,Application ID,Resource,Resource ID,"
    "Resource tenant ID,Home tenant ID,Home tenant name,IP address,Location,Status,Sign-in error code,"
    "Failure reason,Client app,Device ID,Browser,Operating System,Compliant,Managed,Join Type,"
    "Multifactor authentication result,Multifactor authentication auth method"
)


def entra_csv_row(when, name, upn, app, status="Success", code="0"):
    return (
        f'{when},8a1c-req,"Mozilla/5.0 (Windows NT 10.0; Win64; x64)",3f2e-corr,11111111-2222,{name},{upn},Member,'
        f"None,None,None,tok123,None,None,Unbound,{app},00000003-0000,{app},00000003-0000,"
        f'72f988bf,72f988bf,Contoso,203.0.113.9,"Berlin, Berlin, DE",{status},{code},'
        f"{'Other.' if status == 'Success' else 'Invalid username or password.'},Browser,,Edge 124,Windows10,"
        "FALSE,FALSE,,MFA requirement satisfied by claim in the token,"
    )


@pytest.fixture
def company(db):
    ada = EmployeeFactory(work_email="ada.lovelace@example.com")
    alan = EmployeeFactory(work_email="alan.turing@example.com")
    slack = ApplicationFactory(name="Slack", aliases=["Slack Enterprise Grid"])
    jira = ApplicationFactory(name="Jira")
    ada_slack = EntitlementFactory(employee=ada, application=slack, status=EntitlementStatus.ACTIVE)
    alan_slack = EntitlementFactory(employee=alan, application=slack, status=EntitlementStatus.ACTIVE)
    ada_jira = EntitlementFactory(employee=ada, application=jira, status=EntitlementStatus.ACTIVE)
    return {
        "ada": ada,
        "alan": alan,
        "slack": slack,
        "jira": jira,
        "ada_slack": ada_slack,
        "alan_slack": alan_slack,
        "ada_jira": ada_jira,
    }


def run_file(source, content: bytes | str, *, application=None, user=None) -> UsageImport:
    """Upload through the service (as the admin does) and run the queue task (sync in tests)."""
    data = content.encode() if isinstance(content, str) else content
    with TestCase.captureOnCommitCallbacks(execute=True):
        created = usage.usage_import_create(
            source=source,
            uploaded_file=SimpleUploadedFile("signins.log", data),
            application=application,
            acting_user=user,
        )
    created.refresh_from_db()
    return created


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.USAGE_FEEDS = {**settings.USAGE_FEEDS, "UPLOAD_DIR": str(tmp_path / "uploads")}
    return tmp_path / "uploads"


def okta_log(*events, lines=False) -> str:
    if lines:
        return "\n".join(json.dumps(e) for e in events) + "\n"
    return json.dumps(list(events), indent=2)


def test_okta_array_sets_last_use_by_alias_and_email_any_case(company):
    log = okta_log(
        okta_event("Ada.Lovelace@Example.com", "Slack Enterprise Grid", "2026-05-01T09:30:00.123Z"),
        okta_event("ada.lovelace@example.com", "slack enterprise grid", "2026-05-03T10:00:00.000Z"),
        okta_event("alan.turing@example.com", "JIRA", "2026-05-02T08:00:00.000Z"),  # Alan holds no Jira
        okta_event("ada.lovelace@example.com", "Slack", "2026-05-04T10:00:00.000Z", result="FAILURE"),
        okta_event("ada.lovelace@example.com", "Slack", "2026-05-05T10:00:00.000Z", event_type="user.session.start"),
    )
    done = run_file(UsageSource.OKTA, log)
    assert done.status == UsageImport.Status.DONE, done.error
    assert (done.events_read, done.events_used, done.entitlements_updated, done.unmatched) == (5, 3, 1, 1)
    company["ada_slack"].refresh_from_db()
    assert company["ada_slack"].last_used_at == at("2026-05-03T10:00:00+00:00")  # the latest success
    no_access = UnmatchedUsage.objects.get()
    assert (no_access.reason, no_access.app_name, no_access.user, no_access.count) == (
        UnmatchedUsage.Reason.NO_ACCESS,
        "Jira",
        "alan.turing@example.com",
        1,
    )
    assert not done.file  # the upload is deleted once read
    assert AuditEvent.objects.filter(action=AuditEvent.Action.USAGE_IMPORTED, target_id=str(done.pk)).exists()


def test_okta_json_lines(company):
    log = okta_log(okta_event("alan.turing@example.com", "Slack", "2026-05-01T09:30:00Z"), lines=True)
    done = run_file(UsageSource.OKTA, log)
    company["alan_slack"].refresh_from_db()
    assert done.status == UsageImport.Status.DONE
    assert company["alan_slack"].last_used_at == at("2026-05-01T09:30:00+00:00")


def test_reimport_changes_nothing_and_older_never_rewinds(company):
    log = okta_log(
        okta_event("ada.lovelace@example.com", "Slack", "2026-05-03T10:00:00Z"),
        okta_event("stranger@example.com", "Notion", "2026-05-02T10:00:00Z"),
        okta_event("stranger@example.com", "Notion", "2026-05-03T10:00:00Z"),
    )
    run_file(UsageSource.OKTA, log)
    before_ent = company["ada_slack"].__class__.objects.values_list("pk", "last_used_at").order_by("pk")
    before_ent = list(before_ent)
    before_unmatched = list(UnmatchedUsage.objects.values())
    assert before_unmatched[0]["count"] == 2
    again = run_file(UsageSource.OKTA, log)
    assert again.entitlements_updated == 0
    assert list(company["ada_slack"].__class__.objects.values_list("pk", "last_used_at").order_by("pk")) == before_ent
    assert list(UnmatchedUsage.objects.values()) == before_unmatched
    older = okta_log(
        okta_event("ada.lovelace@example.com", "Slack", "2026-04-01T10:00:00Z"),
        okta_event("stranger@example.com", "Notion", "2026-05-04T10:00:00Z"),
    )
    run_file(UsageSource.OKTA, older)
    company["ada_slack"].refresh_from_db()
    assert company["ada_slack"].last_used_at == at("2026-05-03T10:00:00+00:00")  # not rewound
    notion = UnmatchedUsage.objects.get()
    assert (notion.count, notion.first_seen, notion.last_seen) == (
        3,
        at("2026-05-02T10:00:00+00:00"),
        at("2026-05-04T10:00:00+00:00"),
    )
    assert notion.reason == UnmatchedUsage.Reason.NO_APPLICATION


def test_entra_portal_csv_with_bom(company):
    csv_text = "\n".join(
        [
            ENTRA_CSV_HEADER,
            entra_csv_row("2026-05-06T07:15:02Z", "Alan Turing", "Alan.Turing@example.com", "Slack"),
            entra_csv_row(
                "2026-05-07T07:15:02Z", "Alan Turing", "alan.turing@example.com", "Slack", "Failure", "50126"
            ),
            entra_csv_row("2026-05-05T11:00:00Z", "Grace Hopper", "grace@example.com", "Slack"),
        ]
    )
    done = run_file(UsageSource.ENTRA, "\ufeff".encode() + csv_text.encode())
    assert done.status == UsageImport.Status.DONE, done.error
    company["alan_slack"].refresh_from_db()
    assert company["alan_slack"].last_used_at == at("2026-05-06T07:15:02+00:00")  # the failure is not a use
    grace = UnmatchedUsage.objects.get()
    assert (grace.reason, grace.application, grace.user) == (
        UnmatchedUsage.Reason.NO_PERSON,
        company["slack"],
        "grace@example.com",
    )


def test_entra_json_download_and_graph_page(company):
    signin = {
        "id": "66ea54eb-6301-4ee5-be62-ff5a759b0100",
        "createdDateTime": "2026-05-08T12:00:00Z",
        "userDisplayName": "Ada Lovelace",
        "userPrincipalName": "ada.lovelace@example.com",
        "userId": "d7cc485d-2c1b-422c-98fd-5ce52859a4a3",
        "appId": "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
        "appDisplayName": "Jira",
        "ipAddress": "203.0.113.9",
        "clientAppUsed": "Browser",
        "status": {"errorCode": 0, "failureReason": "Other.", "additionalDetails": None},
        "location": {"city": "Berlin", "countryOrRegion": "DE"},
    }
    done = run_file(UsageSource.ENTRA, json.dumps([signin]))
    assert done.status == UsageImport.Status.DONE, done.error
    company["ada_jira"].refresh_from_db()
    assert company["ada_jira"].last_used_at == at("2026-05-08T12:00:00+00:00")
    page = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",
        "value": [{**signin, "createdDateTime": "2026-05-09T12:00:00Z"}],
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=abc",
    }
    run_file(UsageSource.ENTRA, json.dumps(page))
    company["ada_jira"].refresh_from_db()
    assert company["ada_jira"].last_used_at == at("2026-05-09T12:00:00+00:00")


def test_application_csv_semicolons_and_never_used(company):
    text = "Email;Last Active\r\nADA.LOVELACE@example.com;2026-05-10\r\nalan.turing@example.com;\r\n\r\n"
    done = run_file(UsageSource.APP_CSV, text, application=company["jira"])
    assert done.status == UsageImport.Status.DONE, done.error
    company["ada_jira"].refresh_from_db()
    assert company["ada_jira"].last_used_at == at("2026-05-10T00:00:00+00:00")
    assert (done.events_read, done.events_used) == (2, 1)


@pytest.mark.parametrize(
    ("source", "content", "message"),
    [
        (UsageSource.OKTA, '[{"eventType": "user.authentication.sso"', "line 1: "),
        (
            UsageSource.OKTA,
            "[\n" + json.dumps(okta_event("a@example.com", "Slack", "2026-05-01T00:00:00Z")) + ",\n{oops}\n]",
            "line 3: not valid JSON",
        ),
        (UsageSource.OKTA, "not json at all", "line 1: not JSON"),
        (
            UsageSource.OKTA,
            json.dumps([okta_event("a@example.com", "Slack", "01/03/2026 10:00")]),
            "is not a date and time in ISO 8601",
        ),
        (
            UsageSource.OKTA,
            json.dumps([{"eventType": "user.authentication.sso", "published": "2026-05-01T00:00:00Z"}]),
            "without actor.alternateId",
        ),
        (
            UsageSource.OKTA,
            json.dumps([okta_event("a@example.com", "Slack", "2099-01-01T00:00:00Z")]),
            "is in the future",
        ),
        (UsageSource.ENTRA, "Date (UTC),User,Application\n2026-05-01T00:00:00Z,Ada,Slack\n", "no column 'username'"),
        (
            UsageSource.ENTRA,
            "Date (UTC),Username,Application\n2026-05-01T00:00:00Z,ada@example.com,Slack\n"
            "yesterday,ada@example.com,Slack\n",
            "row 3: Date (UTC) 'yesterday'",
        ),
        (UsageSource.APP_CSV, "email,last active\n\xff\xfe,2026-01-01\n".encode("latin-1"), "not UTF-8"),
        (UsageSource.APP_CSV, "email,last active\n,2026-01-01\n", "row 2: email is empty"),
    ],
)
def test_bad_files_are_refused_naming_the_line_and_write_nothing(company, source, content, message):
    application = company["jira"] if source == UsageSource.APP_CSV else None
    good = okta_log(okta_event("ada.lovelace@example.com", "Slack", "2026-05-01T09:30:00Z"))
    done = run_file(source, content, application=application)
    assert done.status == UsageImport.Status.FAILED
    assert message in done.error
    assert not done.file
    assert UnmatchedUsage.objects.count() == 0
    assert not type(company["ada_slack"]).objects.filter(last_used_at__isnull=False).exists()
    # the same company takes a good file afterwards
    assert run_file(UsageSource.OKTA, good).status == UsageImport.Status.DONE


def test_a_bad_record_after_good_ones_writes_nothing(company):
    events = [okta_event("ada.lovelace@example.com", "Slack", "2026-05-01T09:30:00Z")] * 50
    log = okta_log(*events, lines=True) + '{"eventType": "user.authentication.sso", "actor": {}}\n'
    done = run_file(UsageSource.OKTA, log)
    assert done.status == UsageImport.Status.FAILED
    assert done.error.startswith("line 51: ")
    company["ada_slack"].refresh_from_db()
    assert company["ada_slack"].last_used_at is None


def test_record_triples_for_the_api(company):
    result = usage.usage_record(
        events=[
            ("slack enterprise grid", "ADA.lovelace@example.com", "2026-05-01T09:30:00Z"),
            ("Slack", "alan.turing@example.com", datetime.datetime(2026, 5, 2, 8, 0, tzinfo=UTC)),
            ("Miro", "alan.turing@example.com", "2026-05-02T08:00:00Z"),
        ],
        acting_user=None,
    )
    assert (result.status, result.entitlements_updated, result.unmatched) == (UsageImport.Status.DONE, 2, 1)
    company["alan_slack"].refresh_from_db()
    assert company["alan_slack"].last_used_at == at("2026-05-02T08:00:00+00:00")
    with pytest.raises(UsageFileError, match=r"item 2: the email is empty"):
        usage.usage_record(
            events=[("Slack", "ada.lovelace@example.com", "2026-06-01"), ("Slack", " ", "2026-06-01")], acting_user=None
        )
    company["ada_slack"].refresh_from_db()
    assert company["ada_slack"].last_used_at == at("2026-05-01T09:30:00+00:00")  # the refused batch wrote nothing
    assert UsageImport.objects.count() == 1


def test_upload_refusals(company):
    with pytest.raises(ValidationError, match="Choose the application"):
        usage.usage_import_create(
            source=UsageSource.APP_CSV,
            uploaded_file=SimpleUploadedFile("a.csv", b"x"),
            application=None,
            acting_user=None,
        )
    with pytest.raises(ValidationError, match="empty"):
        usage.usage_import_create(
            source=UsageSource.OKTA, uploaded_file=SimpleUploadedFile("a.json", b""), application=None, acting_user=None
        )
    assert UsageImport.objects.count() == 0


def test_a_second_delivery_does_nothing_and_a_dead_reader_is_replaced(company, django_capture_on_commit_callbacks):
    log = okta_log(okta_event("ada.lovelace@example.com", "Slack", "2026-05-01T09:30:00Z"))
    created = usage.usage_import_create(
        source=UsageSource.OKTA,
        uploaded_file=SimpleUploadedFile("a.json", log.encode()),
        application=None,
        acting_user=None,
    )  # not committed: the task did not run
    # a worker claimed it and died mid-file
    UsageImport.objects.filter(pk=created.pk).update(
        status=UsageImport.Status.READING, attempts=1, heartbeat_at=datetime.datetime(2026, 1, 1, tzinfo=UTC)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert usage.usage_imports_sweep() == {"lost": 0, "dead": 1}
    created.refresh_from_db()
    assert (created.status, created.attempts) == (UsageImport.Status.DONE, 2)
    assert usage.usage_import_run(import_id=created.pk) == "not-claimed"


def test_aliases_are_checked_against_other_applications(company):
    company["jira"].aliases = ["slack"]
    with pytest.raises(ValidationError, match="Slack already goes by slack"):
        company["jira"].full_clean()
    company["jira"].aliases = "Slack"
    with pytest.raises(ValidationError, match="Give a list of names"):
        company["jira"].full_clean()


def test_command_prints_progress(company, tmp_path):
    path = tmp_path / "okta.json"
    path.write_text(okta_log(okta_event("ada.lovelace@example.com", "Slack", "2026-05-01T09:30:00Z")))
    out = io.StringIO()
    call_command("usage_import", "--source", "okta", str(path), stdout=out)
    assert "1 sign-ins read" in out.getvalue()
    assert "1 entitlements' last use moved forward" in out.getvalue()
    bad = tmp_path / "bad.json"
    bad.write_text("[{]")
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="line 1: not valid JSON"):
        call_command("usage_import", "--source", "okta", str(bad), stdout=io.StringIO())


def test_admin_upload_reads_in_the_background_and_shows_progress(company, client, it_admin, helpdesk):
    from django.urls import reverse

    add = reverse("admin:accounts_usageimport_add")
    log = okta_log(okta_event("ada.lovelace@example.com", "Slack", "2026-05-01T09:30:00Z"))
    client.force_login(helpdesk)
    assert client.get(add).status_code == 403  # uploads are for IT admins
    client.force_login(it_admin)
    page = client.get(add)
    assert page.status_code == 200 and b'type="file"' in page.content
    refused = client.post(
        add, {"source": UsageSource.APP_CSV, "upload": SimpleUploadedFile("u.csv", b"email,last active\n")}
    )
    assert refused.status_code == 200 and b"Choose the application this CSV is about." in refused.content
    assert UsageImport.objects.count() == 0
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        response = client.post(
            add, {"source": UsageSource.OKTA, "upload": SimpleUploadedFile("okta.json", log.encode())}
        )
    created = UsageImport.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{created.pk}/change/")
    waiting = client.get(response["Location"])
    assert b'<progress id="usage-progress"' in waiting.content and b'http-equiv="refresh"' in waiting.content
    for callback in queued:
        callback()  # the worker reads it (sync queue in tests)
    done = client.get(response["Location"])
    assert b'value="100"' in done.content and b'http-equiv="refresh"' not in done.content
    company["ada_slack"].refresh_from_db()
    assert company["ada_slack"].last_used_at == at("2026-05-01T09:30:00+00:00")
    unmatched = client.get(reverse("admin:accounts_unmatchedusage_changelist"))
    assert unmatched.status_code == 200
