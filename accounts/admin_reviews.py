"""Admin pages of access reviews: campaigns (created as drafts, launched with a confirm step that names the
items nobody could review, frozen by a worker while the campaign's page shows a progress bar, a progress bar
of the answers, evidence page with CSV and XLSX), and their frozen items
(read-only; a decision the engine could not apply is sent again from here). Writes through
`accounts.services.reviews`; imported by `accounts.admin`.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export.formats.base_formats import CSV, XLSX

from accounts.models import AccessReview, AccessReviewStatus, Employee, ReviewItem, ReviewItemState
from accounts.resources import ReviewEvidenceResource
from accounts.scoping import restrict
from accounts.services import reviews
from portal.admin import ConfirmAction, PortalModelAdmin, ReadOnlyRecordMixin

EVIDENCE_PER_PAGE = 500


def progress_bar(percent: int, decided: int, total: int):
    return format_html(
        '<progress max="100" value="{}" aria-label="{} of {} answered">{}%</progress> {}% ({} of {})',
        percent,
        decided,
        total,
        percent,
        percent,
        decided,
        total,
    )


class LaunchForm(forms.Form):
    """Launch: optionally, who reviews the items that have no manager or owner to review them."""

    fallback_reviewer = forms.CharField(
        required=False,
        max_length=254,
        label="Reviewer for items without one",
        help_text="Work email of the person who reviews the items listed above as having nobody to review them "
        "(never their own access). Leave empty to launch only when every item has a reviewer.",
    )

    def clean_fallback_reviewer(self):
        email = self.cleaned_data["fallback_reviewer"].strip()
        if not email:
            return None
        employee = Employee.objects.filter(work_email__iexact=email).exclude(status="terminated").first()
        if employee is None:
            raise ValidationError(f"No current employee has the work email {email!r}.")
        return employee


class ConfirmForm(forms.Form):
    """Nothing to fill in: the page itself is the confirmation."""


def _describe_launch(campaign: AccessReview) -> str:
    if campaign.status == AccessReviewStatus.LAUNCHING:
        if reviews.review_campaign_launch_progress(campaign)["stalled"]:
            return f"{campaign}: its launch stopped (the worker was lost); launching again resumes it."
        return f"{campaign}: being launched now; its page shows the progress."
    if campaign.status != AccessReviewStatus.DRAFT:
        return f"{campaign}: {campaign.get_status_display().lower()}, cannot be launched again."
    plan = reviews.review_campaign_preview(campaign=campaign)
    line = f"{campaign}: {plan.total} item{'s' if plan.total != 1 else ''} in scope, due {campaign.due_on:%d %b %Y}"
    if not plan.missing_count:
        return line + "; every item has a reviewer."
    more = plan.missing_count - len(plan.missing)
    return (
        f"{line}; {plan.missing_count} without a reviewer: {'; '.join(plan.missing)}"
        + (f"; and {more} more" if more > 0 else "")
        + "."
    )


def _launch(request, campaign, data):
    # Checked here (every item has a reviewer, else they are named and nothing is queued); a worker freezes
    # the items, and the campaign's page shows how far it has got.
    campaign = reviews.review_campaign_launch_queue(
        campaign=campaign, acting_user=request.user, fallback_reviewer=data.get("fallback_reviewer")
    )
    return f"{campaign} ({campaign.item_count} items, being frozen in the background: its page shows the progress)"


def _confirm_cap(request, campaign, data):
    result = reviews.review_campaign_confirm_over_cap(campaign=campaign, acting_user=request.user)
    return f"{campaign} ({result.get('decided', 0)} revoked by its rule)"


class AccessReviewForm(forms.ModelForm):
    class Meta:
        model = AccessReview
        fields = (
            "name",
            "description",
            "scope_everything",
            "applications",
            "min_sensitivity",
            "departments",
            "reviewer_rule",
            "starts_on",
            "due_on",
            "unanswered_rule",
            "auto_revoke_cap_percent",
            "recurrence",
        )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("scope_everything") and not (
            cleaned.get("applications") or cleaned.get("departments") or cleaned.get("min_sensitivity")
        ):
            raise ValidationError(
                "Choose what to review: tick 'scope everything', or pick applications, a sensitivity or departments."
            )
        return cleaned


@admin.register(AccessReview)
class AccessReviewAdmin(PortalModelAdmin):
    """Certification campaigns: drafts are edited here, launched with the action, and frozen once launched."""

    form = AccessReviewForm
    list_display = ("name", "status", "reviewer_rule", "starts_on", "due_on", "unanswered_rule", "progress")
    list_filter = ("status", "reviewer_rule", "unanswered_rule")
    search_fields = ("name",)
    ordering = ("-starts_on", "-id")
    filter_horizontal = ("applications", "departments")
    actions = ["launch_campaigns", "confirm_over_cap"]
    readonly_fields = (
        "status",
        "launch_error",
        "item_count",
        "launched_at",
        "launched_by",
        "due_processed_at",
        "cap_blocked_at",
        "closed_at",
        "previous",
        "evidence_link",
    )

    def get_base_queryset(self, request):
        return (
            super()
            .get_base_queryset(request)
            .annotate(
                n_items=Count("items"),
                n_open=Count("items", filter=Q(items__state=ReviewItemState.OPEN)),
            )
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != AccessReviewStatus.DRAFT:
            return tuple(AccessReviewForm.Meta.fields) + self.readonly_fields
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != AccessReviewStatus.DRAFT:
            return False  # the evidence of a launched campaign stays
        return super().has_delete_permission(request, obj)

    @admin.display(description="progress")
    def progress(self, obj):
        if obj.status == AccessReviewStatus.LAUNCHING:
            frozen = getattr(obj, "n_items", 0)
            planned = max(obj.item_count, frozen, 1)
            return format_html(
                '<progress max="{}" value="{}" aria-label="launching: {} of {} items frozen"></progress> '
                "launching: {} of {} items frozen",
                planned,
                frozen,
                frozen,
                planned,
                frozen,
                planned,
            )
        total = getattr(obj, "n_items", 0)
        if not total:
            return "—"
        decided = total - obj.n_open
        return progress_bar(int(100 * decided / total), decided, total)

    @admin.display(description="evidence")
    def evidence_link(self, obj):
        if obj is None or obj.pk is None or obj.status == AccessReviewStatus.DRAFT:
            return "—"
        return format_html(
            '<a href="{}">Evidence (printable, CSV, XLSX)</a>',
            reverse("admin:accounts_accessreview_evidence", args=[obj.pk]),
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.status == AccessReviewStatus.LAUNCHING:
            context["launch"] = reviews.review_campaign_launch_progress(obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        try:
            reviews.review_campaign_save(campaign=obj, acting_user=request.user)
        except ValidationError as exc:
            raise PermissionDenied(" ".join(exc.messages)) from exc

    launch_campaigns = ConfirmAction(
        form_class=LaunchForm,
        apply=_launch,
        description="Launch selected campaigns (freeze their items)",
        submit_label="Launch",
        done_message="Launched",
        describe=_describe_launch,
        label=str,
    )
    confirm_over_cap = ConfirmAction(
        form_class=ConfirmForm,
        apply=_confirm_cap,
        description="Confirm revoking unanswered items over the auto-revoke cap",
        submit_label="Revoke the unanswered items",
        done_message="Applied the due-date rule",
    )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/evidence/", wrap(self.evidence_view), name="accounts_accessreview_evidence"),
            path(
                "<int:pk>/evidence/<str:fmt>/",
                wrap(self.evidence_export_view),
                name="accounts_accessreview_evidence_export",
            ),
            *super().get_urls(),
        ]

    def _campaign(self, request, pk: int) -> AccessReview:
        campaign = self.get_queryset(request).filter(pk=pk).first()
        if campaign is None:
            raise Http404("No such access review.")
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def _evidence_items(self, request, campaign):
        """The campaign's items, those of people inside the user's scope for a scoped helpdesk."""
        items = campaign.items.select_related("reviewer", "decided_by")
        return restrict(items.order_by("employee_name", "application_name", "pk"), request.user)

    def evidence_view(self, request, pk: int):
        """Who reviewed what, when, the decision and the confirmed date; the progress; a page at a time."""
        campaign = self._campaign(request, pk)
        progress = reviews.review_progress(campaign)
        page = Paginator(self._evidence_items(request, campaign), EVIDENCE_PER_PAGE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Evidence: {campaign}",
            "campaign": campaign,
            "progress": progress,
            "bar": progress_bar(progress["percent"], progress["decided"], progress["total"]),
            "page": page,
            "items": list(page.object_list),
            "generated_at": timezone.now(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/accounts/accessreview/evidence.html", context)

    def evidence_export_view(self, request, pk: int, fmt: str):
        """The whole evidence as CSV or XLSX (formula-safe)."""
        campaign = self._campaign(request, pk)
        formats = {"csv": CSV, "xlsx": XLSX}
        if fmt not in formats:
            raise Http404("Export as csv or xlsx.")
        file_format = formats[fmt]()
        dataset = ReviewEvidenceResource().export(queryset=self._evidence_items(request, campaign))
        content = file_format.export_data(dataset)
        response = HttpResponse(content, content_type=file_format.get_content_type())
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = f'attachment; filename="access-review-{campaign.pk}-evidence-{stamp}.{fmt}"'
        return response


def _resend(request, item, data):
    reviews.review_item_reapply(item=item, acting_user=request.user)
    return str(item)


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyRecordMixin, PortalModelAdmin):
    """Frozen items of the campaigns, as reviewers decided them; decisions are made in self-service."""

    list_display = (
        "employee_name",
        "application_name",
        "level",
        "campaign",
        "reviewer",
        "state",
        "decision",
        "decided_at",
        "applied_at",
    )
    list_select_related = ("campaign", "reviewer")
    list_filter = ("state", "decision", "suggestion", "reviewer_kind")
    search_fields = ("employee_name", "application_name", "campaign__name")
    ordering = ("campaign", "employee_name", "application_name", "id")
    actions = ["send_again"]
    raw_id_fields = ("campaign", "entitlement", "employee", "application", "reviewer", "decided_by")

    send_again = ConfirmAction(
        form_class=ConfirmForm,
        apply=_resend,
        description="Send failed decisions to the lifecycle engine again",
        submit_label="Send again",
        done_message="Sent to the engine again",
        permissions=("send",),
    )

    def has_send_permission(self, request):
        return request.user.has_perm("accounts.change_accessreview")
