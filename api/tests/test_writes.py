"""Writes through the API go through the services: the token's user is the actor in history and the audit
log, the service's refusal is the 400's detail, and the same flow as the pages results."""

import pytest

from accounts.models import AccessRequest, AccessRequestStatus, ApprovalStepStatus
from assets.models import AssetCheckout, AssetStatus, HardwareAsset
from offboarding.models import Task, TaskStatus
from portal.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_request_then_approve_by_manager_and_owner(seeded, api):
    created = api.employee.post(
        "/api/v1/access-requests/",
        {"application": seeded.capped_app.pk, "level": "user", "justification": "Incident.", "end_date": None},
    )
    assert created.status_code == 400  # Prod DB grants 30 days at most: the service's words
    assert "at most 30 days" in created.json()["detail"]
    created = api.employee.post(
        "/api/v1/access-requests/", {"application": seeded.app.pk, "level": "write", "justification": "Fix a bug."}
    )
    assert created.status_code == 400 and "already have access" in created.json()["detail"]  # holds GitHub

    created = api.teammate.post(
        "/api/v1/access-requests/", {"application": seeded.app.pk, "level": "write", "justification": "Fix a bug."}
    )
    assert created.status_code == 201
    request_id = created.json()["id"]
    assert [s["status"] for s in created.json()["steps"]] == [ApprovalStepStatus.PENDING, ApprovalStepStatus.WAITING]
    request = AccessRequest.objects.get(pk=request_id)
    assert request.history.first().history_user == seeded.teammate.user
    assert AuditEvent.objects.get(action=AuditEvent.Action.REQUEST, target_id=str(request_id)).actor == (
        seeded.teammate.user
    )

    assert api.owner.post(f"/api/v1/access-requests/{request_id}/approve/").status_code == 404  # not their turn
    assert api.manager.post(f"/api/v1/access-requests/{request_id}/approve/", {"comment": "ok"}).status_code == 200
    approved = api.owner.post(f"/api/v1/access-requests/{request_id}/approve/", {"comment": "fine"})
    assert approved.status_code == 200
    assert approved.json()["status"] == AccessRequestStatus.APPROVED
    actors = set(
        AuditEvent.objects.filter(action=AuditEvent.Action.APPROVE, target_type="accounts.ApprovalStep").values_list(
            "actor__username", flat=True
        )
    )
    assert actors == {"manager", "owner"}
    again = api.owner.post(f"/api/v1/access-requests/{request_id}/approve/")
    assert again.status_code == 403  # decided: nothing waits for them
    assert "waiting for your decision" in again.json()["detail"]


def test_reject_and_cancel(seeded, api):
    figma = AccessRequest.objects.get(employee=seeded.employee, application=seeded.owner_app)
    rejected = api.owner.post(f"/api/v1/access-requests/{figma.pk}/reject/", {"comment": "Use the viewer."})
    assert (rejected.status_code, rejected.json()["status"]) == (200, AccessRequestStatus.REJECTED)
    refused = api.employee.post(f"/api/v1/access-requests/{figma.pk}/cancel/")
    assert refused.status_code == 403  # decided already
    created = api.employee.post(
        "/api/v1/access-requests/", {"application": seeded.owner_app.pk, "level": "user", "justification": "Again."}
    ).json()
    cancelled = api.employee.post(f"/api/v1/access-requests/{created['id']}/cancel/")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, AccessRequestStatus.CANCELLED)
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.ACCESS_REQUEST_CANCELLED, actor=seeded.employee.user
    ).exists()


def test_helpdesk_checks_hardware_out_and_in_and_the_holder_accepts_the_terms(seeded, api):
    stock = HardwareAsset.objects.get(asset_tag="LT-API-STOCK")
    out = api.helpdesk.post(
        f"/api/v1/hardware/{stock.pk}/check-out/", {"asset": stock.pk, "employee": seeded.teammate.pk}
    )
    assert (out.status_code, out.json()["status"], out.json()["assigned_to"]) == (
        200,
        AssetStatus.ASSIGNED,
        seeded.teammate.pk,
    )
    twice = api.helpdesk.post(
        f"/api/v1/hardware/{stock.pk}/check-out/", {"asset": stock.pk, "employee": seeded.employee.pk}
    )
    assert twice.status_code == 400  # the service refuses: someone holds it
    assert AuditEvent.objects.get(action=AuditEvent.Action.CHECK_OUT, target_id=str(stock.pk)).actor == seeded.helpdesk
    mismatch = api.helpdesk.post(f"/api/v1/hardware/{stock.pk}/check-out/", {"asset": 1, "employee": 1})
    assert mismatch.status_code == 400

    checkout = AssetCheckout.objects.get(asset=stock)
    accepted = api.teammate.post(f"/api/v1/checkouts/{checkout.pk}/accept-terms/")
    assert accepted.status_code == 200 and accepted.json()["terms_accepted_at"]

    back = api.helpdesk.post(
        f"/api/v1/hardware/{stock.pk}/check-in/", {"condition": "scratched", "to_status": "in_repair"}
    )
    assert (back.status_code, back.json()["status"]) == (200, AssetStatus.IN_REPAIR)
    bad = api.helpdesk.post(f"/api/v1/hardware/{stock.pk}/check-in/", {"to_status": "lost"})
    assert bad.status_code == 400 and "to_status" in bad.json()["errors"]


def test_it_retries_and_skips_tasks_with_a_reason_and_the_assignee_completes_theirs(seeded, api):
    failed = Task.objects.get(key="wipe")
    assert api.helpdesk.post(f"/api/v1/tasks/{failed.pk}/retry/", {}).status_code == 400  # a reason is required
    retried = api.helpdesk.post(f"/api/v1/tasks/{failed.pk}/retry/", {"reason": "Phone online again."})
    assert (retried.status_code, retried.json()["status"]) == (200, TaskStatus.PENDING)
    audit = AuditEvent.objects.get(action=AuditEvent.Action.TASK_RETRIED, target_id=str(failed.pk))
    assert (audit.actor, audit.detail["reason"]) == (seeded.helpdesk, "Phone online again.")
    not_failed = api.helpdesk.post(f"/api/v1/tasks/{failed.pk}/retry/", {"reason": "Again."})
    assert not_failed.status_code == 400 and "nothing to retry" in not_failed.json()["detail"]
    skipped = api.it_admin.post(f"/api/v1/tasks/{failed.pk}/skip/", {"reason": "Phone destroyed."})
    assert (skipped.status_code, skipped.json()["status"]) == (200, TaskStatus.SKIPPED)

    handbook = Task.objects.get(key="handbook")
    done = api.employee.post(f"/api/v1/tasks/{handbook.pk}/complete/", {"note": "Read it all."})
    assert (done.status_code, done.json()["status"]) == (200, TaskStatus.DONE)
    handbook.refresh_from_db()
    assert handbook.completed_by == seeded.employee.user


def test_filters_narrow_lists(seeded, api):
    by_status = api.it_admin.get("/api/v1/tasks/", status="failed").json()
    assert [t["key"] for t in by_status["results"]] == ["wipe"]
    by_department = api.it_admin.get("/api/v1/employees/", department=seeded.employee.department_id).json()
    assert seeded.other_employee.pk not in {e["id"] for e in by_department["results"]}
    assert api.it_admin.get("/api/v1/employees/", search="Erin").json()["results"][0]["id"] == seeded.employee.pk
    assert api.it_admin.get("/api/v1/checkouts/", open="true").json()["count"] == 1
    page = api.it_admin.get("/api/v1/employees/", page_size=2).json()
    assert len(page["results"]) == 2 and page["next"].endswith("page=2&page_size=2")
