"""The REST API's endpoints: thin views over the access helpers (`api.access`) and the apps' services.

Reads start from `api.access.<resource>_for(user)`; a row outside it answers 404. Writes check the
same permission the page or admin action checks, then call the service with `acting_user`, which
writes history and the audit log; a service's refusal answers 400 with its own words. Every POST
takes an `Idempotency-Key` (`api.idempotency`).
"""

from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access as account_access
from accounts.models import AccessRequestStatus, ApprovalStep
from accounts.selectors import employee_for_user
from accounts.services import access_requests, approval_steps
from accounts.services.usage import UsageFileError, usage_record
from api import access, filters, serializers
from api.idempotency import idempotent
from assets import services as asset_services
from assets.selectors import checkout_for_holder
from offboarding import access as offboarding_access
from offboarding import engine
from offboarding.models import Assignee, Task

MAX_ID = serializers.MAX_ID


class ScopedViewSet(viewsets.ReadOnlyModelViewSet):
    """List and detail of the rows `scope(user)` returns; an id that is not a whole number answers 404."""

    scope = None
    lookup_value_regex = "[^/]+"  # any segment reaches the view, so a junk id gets this API's JSON 404

    def get_queryset(self):
        queryset = type(self).scope(self.request.user)
        return queryset if queryset.ordered else queryset.order_by("-pk")  # stable pages

    def get_object(self):
        raw = str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_ID:
            raise Http404
        return super().get_object()


def _require(user, perm: str, what: str) -> None:
    if not access.is_staff_with(user, perm):
        raise PermissionDenied(f"Only IT staff allowed to {what} may do this.")


def _valid(serializer_class, request):
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class EmployeeViewSet(ScopedViewSet):
    """People: IT sees everyone; an employee themselves and their direct reports."""

    scope = staticmethod(access.employees_for)
    serializer_class = serializers.EmployeeSerializer
    filterset_class = filters.EmployeeFilter


class DepartmentViewSet(ScopedViewSet):
    scope = staticmethod(access.departments_for)
    serializer_class = serializers.DepartmentSerializer
    filterset_class = filters.DepartmentFilter


class LocationViewSet(ScopedViewSet):
    scope = staticmethod(access.locations_for)
    serializer_class = serializers.LocationSerializer
    filterset_class = filters.LocationFilter


class RoleViewSet(ScopedViewSet):
    scope = staticmethod(access.roles_for)
    serializer_class = serializers.RoleSerializer
    filterset_class = filters.RoleFilter


class ApplicationViewSet(ScopedViewSet):
    """Applications: IT sees all; others the requestable catalog, what they own and what they hold."""

    scope = staticmethod(access.applications_for)
    serializer_class = serializers.ApplicationSerializer
    filterset_class = filters.ApplicationFilter


class EntitlementViewSet(ScopedViewSet):
    scope = staticmethod(access.entitlements_for)
    serializer_class = serializers.EntitlementSerializer
    filterset_class = filters.EntitlementFilter


def _with_steps(queryset):
    return queryset.prefetch_related(
        Prefetch("steps", queryset=ApprovalStep.objects.select_related("approver").order_by("order"))
    )


@extend_schema_view(
    create=extend_schema(
        request=serializers.AccessRequestCreateSerializer,
        responses={201: serializers.AccessRequestSerializer},
        summary="Request access for yourself",
    ),
    approve=extend_schema(request=serializers.DecisionSerializer, summary="Approve, as the approver of its step"),
    reject=extend_schema(request=serializers.DecisionSerializer, summary="Reject, as the approver of its step"),
    cancel=extend_schema(request=None, summary="Withdraw your own pending request"),
)
class AccessRequestViewSet(mixins.CreateModelMixin, ScopedViewSet):
    """Access requests: your own, those waiting for your decision or decided by you; IT sees all."""

    scope = staticmethod(access.access_requests_for)
    serializer_class = serializers.AccessRequestSerializer
    filterset_class = filters.AccessRequestFilter

    def get_queryset(self):
        return _with_steps(super().get_queryset())

    def _answer(self, pk, code=status.HTTP_200_OK):
        return Response(
            self.get_serializer(_with_steps(access.access_requests_for(self.request.user)).get(pk=pk)).data, status=code
        )

    @idempotent
    def create(self, request, *args, **kwargs):
        data = _valid(serializers.AccessRequestCreateSerializer, request)
        employee = employee_for_user(request.user)
        if employee is None:
            raise PermissionDenied("Your login has no employee record: only employees request access for themselves.")
        application = account_access.requestable_applications().filter(pk=data["application"]).first()
        if application is None:
            raise ValidationError(
                {
                    "application": f"No requestable application has the id {data['application']}; "
                    "see GET /api/v1/applications/?requestable=true."
                }
            )
        created = access_requests.access_request_create(
            employee=employee,
            application=application,
            level=data["level"],
            justification=data["justification"],
            end_date=data.get("end_date"),
            acting_user=request.user,
        )
        return self._answer(created.pk, status.HTTP_201_CREATED)

    def _decide(self, request, approve: bool):
        item = self.get_object()
        data = _valid(serializers.DecisionSerializer, request)
        step = account_access.steps_for_decider(request.user).filter(request=item).first()
        if step is None or not account_access.can_decide_step(request.user, step):
            raise PermissionDenied("No step of this request is waiting for your decision.")
        approval_steps.approval_step_decide(
            step=step, acting_user=request.user, approve=approve, comment=data["comment"]
        )
        return self._answer(item.pk)

    @action(detail=True, methods=["post"])
    @idempotent
    def approve(self, request, pk=None):
        return self._decide(request, approve=True)

    @action(detail=True, methods=["post"])
    @idempotent
    def reject(self, request, pk=None):
        return self._decide(request, approve=False)

    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk=None):
        item = self.get_object()
        if item.status != AccessRequestStatus.PENDING or not account_access.can_cancel_request(request.user, item):
            raise PermissionDenied("Only the requester may withdraw a request, and only while it is pending.")
        access_requests.access_request_cancel(request=item, acting_user=request.user)
        return self._answer(item.pk)


@extend_schema_view(
    check_out=extend_schema(request=serializers.CheckoutCreateSerializer, summary="Check out to an employee (IT)"),
    check_in=extend_schema(request=serializers.CheckinSerializer, summary="Check in from its holder (IT)"),
)
class HardwareViewSet(ScopedViewSet):
    """Hardware: IT sees all; others what they and their direct reports hold."""

    scope = staticmethod(access.hardware_for)
    serializer_class = serializers.HardwareSerializer
    filterset_class = filters.HardwareFilter

    def _answer(self, pk):
        return Response(self.get_serializer(access.hardware_for(self.request.user).get(pk=pk)).data)

    @action(detail=True, methods=["post"], url_path="check-out")
    @idempotent
    def check_out(self, request, pk=None):
        asset = self.get_object()
        _require(request.user, "assets.change_hardwareasset", "change hardware")
        data = _valid(serializers.CheckoutCreateSerializer, request)
        if data["asset"] != asset.pk:
            raise ValidationError({"asset": f"The body names asset {data['asset']}, the address asset {asset.pk}."})
        employee = access.employees_for(request.user).filter(pk=data["employee"]).first()
        if employee is None:
            raise ValidationError({"employee": f"No employee has the id {data['employee']}."})
        asset_services.asset_check_out(
            asset=asset,
            employee=employee,
            acting_user=request.user,
            terms_accepted=data["terms_accepted"],
            note=data["note"],
        )
        return self._answer(asset.pk)

    @action(detail=True, methods=["post"], url_path="check-in")
    @idempotent
    def check_in(self, request, pk=None):
        asset = self.get_object()
        _require(request.user, "assets.change_hardwareasset", "change hardware")
        data = _valid(serializers.CheckinSerializer, request)
        asset_services.asset_check_in(
            asset=asset,
            acting_user=request.user,
            condition=data["condition"],
            to_status=data["to_status"],
            note=data["note"],
        )
        return self._answer(asset.pk)


@extend_schema_view(accept_terms=extend_schema(request=None, summary="Accept the terms, as the holder"))
class CheckoutViewSet(ScopedViewSet):
    """Check-outs: IT sees all; others their own."""

    scope = staticmethod(access.checkouts_for)
    serializer_class = serializers.CheckoutSerializer
    filterset_class = filters.CheckoutFilter

    @action(detail=True, methods=["post"], url_path="accept-terms")
    @idempotent
    def accept_terms(self, request, pk=None):
        item = self.get_object()
        if item.employee.user_id != request.user.pk:
            raise PermissionDenied("Only the person holding the asset accepts its terms.")
        checkout = checkout_for_holder(request.user, item.pk)  # the holder's own, and only while it is open
        asset_services.checkout_accept_terms(checkout=checkout, acting_user=request.user)
        return Response(self.get_serializer(access.checkouts_for(request.user).get(pk=checkout.pk)).data)


class LicenseViewSet(ScopedViewSet):
    """Licenses with the seats used (counted); IT and auditors only."""

    scope = staticmethod(access.licenses_for)
    serializer_class = serializers.LicenseSerializer
    filterset_class = filters.LicenseFilter


class ChecklistRunViewSet(ScopedViewSet):
    """Join, move, leave and access-change checklists with their progress; managers see their reports' open ones."""

    scope = staticmethod(access.runs_for)
    serializer_class = serializers.ChecklistRunSerializer
    filterset_class = filters.ChecklistRunFilter


@extend_schema_view(
    retry=extend_schema(request=serializers.ReasonSerializer, summary="Retry a failed task (IT)"),
    skip=extend_schema(request=serializers.ReasonSerializer, summary="Skip a failed or pending task (IT)"),
    complete=extend_schema(request=serializers.NoteSerializer, summary="Mark a manual task done"),
)
class TaskViewSet(ScopedViewSet):
    """Checklist tasks: IT sees all; others the tasks assigned to them."""

    scope = staticmethod(access.tasks_for)
    serializer_class = serializers.TaskSerializer
    filterset_class = filters.TaskFilter

    def _answer(self, pk):
        # The task as it is now, even when it has left the actor's scope (a done task leaves "my tasks").
        return Response(self.get_serializer(Task.objects.select_related("run", "assignee").get(pk=pk)).data)

    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request, pk=None):
        task = self.get_object()
        _require(request.user, "offboarding.change_task", "change checklist tasks")
        data = _valid(serializers.ReasonSerializer, request)
        engine.task_retry(task=task, acting_user=request.user, reason=data["reason"])
        return self._answer(task.pk)

    @action(detail=True, methods=["post"])
    @idempotent
    def skip(self, request, pk=None):
        task = self.get_object()
        _require(request.user, "offboarding.change_task", "change checklist tasks")
        data = _valid(serializers.ReasonSerializer, request)
        engine.task_skip(task=task, acting_user=request.user, reason=data["reason"])
        return self._answer(task.pk)

    @action(detail=True, methods=["post"])
    @idempotent
    def complete(self, request, pk=None):
        task = self.get_object()
        if not access.is_staff_with(request.user, "offboarding.change_task"):
            if (
                task.assignee_type == Assignee.SYSTEM
                or task.assignee is None
                or task.assignee.user_id != request.user.pk
            ):
                raise PermissionDenied("Only the person the task is assigned to, or IT, marks it done.")
            task = offboarding_access.task_for_assignee(request.user, task.pk)
        elif task.assignee_type == Assignee.SYSTEM:
            raise ValidationError("This task is automated; retry or skip it instead.")
        data = _valid(serializers.NoteSerializer, request)
        engine.task_complete(task=task, acting_user=request.user, note=data["note"])
        return self._answer(task.pk)


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from the sidecar's static files; script and styles are files, so the CSP holds (no Redoc:
    it injects inline styles and loads Google Fonts, both refused by the CSP)."""

    template_name = "api/swagger_ui.html"


class NotFoundView(APIView):
    """Any other address under /api/v1/: a JSON 404 (not the HTML page), for any method, signed in or not."""

    authentication_classes = []
    permission_classes = []
    schema = None

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise Http404

    get = post = put = patch = delete = head = options = http_method_not_allowed


class UsageView(APIView):
    """Last uses pushed by a script (a usage feed without a file): IT staff allowed to import usage."""

    @extend_schema(
        request=serializers.UsageBatchSerializer,
        responses={201: serializers.UsageImportSerializer},
        summary="Record last uses",
        description=(
            "Moves each entitlement's last use forward (never back); pairs that match no application, "
            "person or access are kept as unmatched sign-ins. Same rules as an uploaded sign-in log."
        ),
    )
    @idempotent
    def post(self, request):
        _require(request.user, "accounts.add_usageimport", "import usage")
        batch = _valid(serializers.UsageBatchSerializer, request)
        triples = [(e["application"], e["email"], e["last_used_at"]) for e in batch["events"]]
        try:
            record = usage_record(events=triples, acting_user=request.user)
        except UsageFileError as error:
            raise ValidationError({"events": [str(error)]}) from error
        return Response(serializers.UsageImportSerializer(record).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    """Who the token (or session) acts as: login, groups, employee record."""

    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request):
        employee = employee_for_user(request.user)
        token = request.auth if hasattr(request.auth, "prefix") else None
        return Response(
            serializers.MeSerializer(
                {
                    "username": request.user.get_username(),
                    "is_staff": request.user.is_staff,
                    "groups": sorted(g.name for g in request.user.groups.all()),
                    "employee": employee.pk if employee else None,
                    "token": token.prefix if token else None,
                }
            ).data
        )
