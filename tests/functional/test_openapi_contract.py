"""Schemathesis against the engine's own OpenAPI document: generated requests, including
hostile ones, never get a 5xx or a response that breaks the documented schema."""

from uuid import UUID

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from eventgate.engine.process import RunningEngine

pytestmark = [pytest.mark.functional, pytest.mark.destructive]
EXAMPLES_PER_OPERATION = 30


def test_the_api_honours_its_openapi_document(engine: RunningEngine,
                                              busy_tenant: UUID) -> None:
    # Driven through the Python API: schemathesis' own pytest plugin does not run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{engine.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy(), as_real_tenant=st.booleans())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def honour(case: schemathesis.Case, as_real_tenant: bool) -> None:
            # About half the requests as a real tenant, so generation gets past the tenant check.
            if case.headers and "X-Tenant-ID" in case.headers and as_real_tenant:
                case.headers["X-Tenant-ID"] = str(busy_tenant)
            # Requests valid by the schema can still be refused on purpose: a reversed date
            # range, an event type no plugin serves. Every other check stays on.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            honour()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # collected, so one run reports every broken operation
            failures[operation.label] = str(exc)[:1500]
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
