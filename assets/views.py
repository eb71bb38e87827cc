"""Self-service hardware: what I hold, and accepting the terms for a newly checked-out device."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import employee_for_user
from assets.selectors import checkout_for_holder, hardware_for_employee
from assets.services import checkout_accept_terms
from portal.views import no_record_page


@login_required
def my_hardware(request):
    employee = employee_for_user(request.user)
    if employee is None:
        return no_record_page(request, "My hardware")
    return render(request, "assets/my_hardware.html", {"hardware": list(hardware_for_employee(employee))})


@login_required
@require_POST
def accept_terms(request, pk: int):
    checkout = checkout_for_holder(request.user, pk)
    try:
        checkout_accept_terms(checkout=checkout, acting_user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Thank you: you accepted the terms for {checkout.asset.asset_tag}.")
    return redirect("assets:my_hardware")
