"""Schemathesis against the engine's own OpenAPI document: generated requests, including
hostile ones, never get a 5xx or a response that breaks the documented schema, whether they
carry a tenant's credential or not (schemathesis' own auth checks then also try each
operation without it and with a forged one); and without any credential, every operation but
the public ones answers 401 or 403, never data and never a 5xx."""

from collections.abc import Callable
from uuid import UUID

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from eventgate.engine.process import RunningEngine
from eventgate.pytest_plugin.fix_engine import AsTenant

pytestmark = [pytest.mark.functional, pytest.mark.destructive]
EXAMPLES_PER_OPERATION = 30
# What anyone may ask: the probes', the monitoring's and the plugin catalogue (no tenant data).
PUBLIC = frozenset({"GET /health", "GET /metrics", "GET /api/metrics", "GET /api/event-types",
                    "GET /api/plugins"})


def _operations(engine: RunningEngine) -> list[schemathesis.APIOperation]:
    # Driven through the Python API: schemathesis' own pytest plugin does not run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{engine.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    return operations


def _each(operations: list[schemathesis.APIOperation],
          run: Callable[[schemathesis.APIOperation], None]) -> None:
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            run(operation)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # collected, so one run reports every broken operation
            failures[operation.label] = str(exc)[:1500]
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_the_api_honours_its_openapi_document(engine: RunningEngine, busy_tenant: UUID,
                                              as_tenant: AsTenant) -> None:
    credential = as_tenant(busy_tenant)

    def run(operation: schemathesis.APIOperation) -> None:
        @given(case=operation.as_strategy(), authenticated=st.booleans())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def honour(case: schemathesis.Case, authenticated: bool) -> None:
            # About half the requests as a real tenant, so generation gets past the
            # credential check.
            if authenticated:
                case.headers = {**(case.headers or {}), **credential}
            # Requests valid by the schema can still be refused on purpose: a reversed date
            # range, an event type no plugin serves. Every other check stays on.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        honour()

    _each(_operations(engine), run)


def test_without_a_credential_every_operation_but_the_public_ones_is_refused(
        engine: RunningEngine) -> None:
    guarded = [op for op in _operations(engine) if op.label not in PUBLIC]
    assert guarded, "the engine's document lists no operation that needs a credential"

    def run(operation: schemathesis.APIOperation) -> None:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION // 3, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def refuse(case: schemathesis.Case) -> None:
            case.headers = {k: v for k, v in (case.headers or {}).items()
                            if k.lower() != "authorization"}
            response = case.call()
            assert response.status_code in (401, 403), (
                f"{operation.label} answered {response.status_code} without a credential: "
                f"{response.text[:300]}")

        refuse()

    _each(guarded, run)
