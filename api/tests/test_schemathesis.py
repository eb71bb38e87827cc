"""Schemathesis against the published schema (/api/v1/schema/), through the WSGI app inside pytest-django.

Every operation, as an IT admin and as an employee, with generated valid input (positive mode) and
input the schema forbids (negative mode); ids are sometimes those of real rows of `seeded`, so details
and actions reach the services. The checks: no 5xx, status codes, content types and bodies exactly as
the schema documents them. Bounded: `PORTAL_SCHEMATHESIS_EXAMPLES` examples per operation and mode
(default 6), no shrinking, a fixed seed.
"""

import os

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.tests.conftest import token_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("PORTAL_SCHEMATHESIS_EXAMPLES", "6"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _real_ids():
    from accounts.models import AccessRequest, Application, Department, Employee, Entitlement, Location, Role
    from assets.models import AssetCheckout, HardwareAsset, License
    from offboarding.models import ChecklistRun, Task

    ids = set()
    for model in (
        AccessRequest,
        Application,
        Department,
        Employee,
        Entitlement,
        Location,
        Role,
        AssetCheckout,
        HardwareAsset,
        License,
        ChecklistRun,
        Task,
    ):
        ids.update(model.objects.values_list("pk", flat=True))
    return sorted(ids)


@pytest.fixture
def wsgi_app():
    """Django's WSGI app, sharing the test's connection and transaction: like Django's test client, the
    request signals must not close the connection after each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize("audience", ["it_admin", "employee"])
def test_the_api_keeps_its_published_schema(seeded, it_admin, wsgi_app, audience):
    user = it_admin if audience == "it_admin" else seeded.employee.user
    headers = {"Authorization": f"Bearer {token_for(user, 'schemathesis')}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app)
    schema.config.generation.update(allow_x00=False, codec="utf-8", database="none")
    ids = _real_ids()
    failures, calls = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode), real=st.none() | st.sampled_from(ids))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def check(case, real):
                nonlocal calls
                if real is not None and case.path_parameters and "id" in case.path_parameters:
                    case.path_parameters["id"] = real
                response = case.call(headers=headers)
                calls += 1
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                check()
            except (AssertionError, FailureGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert calls > 35 * EXAMPLES, calls
    assert not failures, "\n\n".join(failures)
