"""/health, /metrics (Prometheus text) and /api/metrics (the deployment guide's JSON); the
figures themselves are computed in observability.py."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout

from eventgate.engine import models
from eventgate.engine.database import unavailable
from eventgate.engine.deps import FinalMigration, Metrics, Plugins, Pool
from eventgate.engine.observability import guide_metrics, health
from eventgate.engine.problems import documented

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=models.HealthReport,
            responses={503: {"model": models.HealthReport}})
def get_health(pool: Pool, plugins: Plugins, final_migration: FinalMigration) -> JSONResponse:
    """Database, plugins and migration; 503 naming the failing check."""
    report = models.HealthReport(**health(pool, plugins, final_migration))
    return JSONResponse(report.model_dump(mode="json"),
                        status_code=200 if report.status == "healthy" else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def get_metrics(metrics: Metrics) -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/metrics", response_model=models.GuideMetrics, responses=documented(503))
def get_guide_metrics(pool: Pool, plugins: Plugins, metrics: Metrics) -> dict[str, Any]:
    """The deployment guide's metrics JSON."""
    try:
        return guide_metrics(pool, plugins, metrics)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise unavailable() from exc
