"""The OpenAPI description every endpoint shares: the error answers it may give, and `Idempotency-Key` on POST.

drf-spectacular documents only the success answer; a client (and schemathesis) must also know the
refusals: 400 bad input, 401 no or bad token, 403 not allowed, 404 unknown or not yours, and for
POST 409/422 from idempotency keys.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from api.idempotency import HEADER, MAX_KEY_LENGTH


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in plain words.")
    errors = serializers.DictField(
        required=False, help_text="For bad input: the messages per field (`non_field_errors` for the rest)."
    )


ERROR_DESCRIPTIONS = {
    "400": "Bad input: a field, filter or page that is not valid, or a refusal by the service (reason in `detail`).",
    "401": "No token, or a token that is not valid, has expired or was revoked.",
    "403": "Signed in, but not allowed to do this (e.g. without the group permission).",
    "404": "Unknown, or not yours to see.",
    "409": "A request with the same Idempotency-Key was still in flight.",
    "422": "The Idempotency-Key was used already for another request.",
}


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403"]
        if self.method == "POST":
            codes += ["409", "422"]
        if "{" in self.path or self.method == "POST":
            codes.append("404")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(
                OpenApiParameter(
                    HEADER,
                    str,
                    OpenApiParameter.HEADER,
                    required=False,
                    description=(
                        f"Up to {MAX_KEY_LENGTH} printable characters chosen by the client (a UUID, say). The same key "
                        "with the same request answers the first response again (header `Idempotent-Replayed: true`) "
                        "and writes nothing twice; with another request it is refused with 422. Kept 24 hours."
                    ),
                )
            )
        return parameters


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "portal_…",
            "description": "A personal token made on /api/tokens/; it acts as its user.",
        }
