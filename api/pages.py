"""The self-service page where a signed-in person makes and revokes their own API tokens."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from api.models import ApiToken
from api.services import MAX_TOKEN_DAYS, api_token_create, api_token_revoke
from portal.forms import add_service_errors, parse_id


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “nightly HR sync”.")
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        initial=90,
        help_text="Leave empty for a token that lasts until you revoke it.",
    )


@login_required
def tokens(request):
    """List the person's tokens (newest first), make one (its secret shown on this page once)."""
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                acting_user=request.user,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Token “{token.name}” made. Copy it now: it is not shown again.")
            form = TokenForm()
    rows = list(ApiToken.objects.filter(user=request.user)[:100])
    return render(request, "api/tokens.html", {"form": form, "tokens": rows, "secret": secret})


@login_required
@require_POST
def token_revoke(request, pk):
    token_id = parse_id(str(pk))
    token = ApiToken.objects.filter(pk=token_id, user=request.user).first() if token_id else None
    if token is None:
        raise Http404("No such token.")
    api_token_revoke(token=token, acting_user=request.user)
    messages.success(request, f"Token “{token.name}” is revoked; requests with it now answer 401.")
    return redirect("api:tokens")
