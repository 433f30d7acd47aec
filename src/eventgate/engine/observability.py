"""/health, /metrics (Prometheus text) and /api/metrics (the deployment guide's JSON shape)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from eventgate import __version__
from eventgate.engine import store
from eventgate.engine.plugins import PluginRegistry

DB_TIMEOUT_S = 2.0

# The names the engine exports, read by `eventgate watch`, the alert rules and the dashboard.
REQUEST_DURATION = "eventgate_engine_request_duration_seconds"
DATABASE_UP = "eventgate_engine_database_up"
EVENTS = "eventgate_engine_events"
POOL_CONNECTIONS = "eventgate_engine_pool_connections"
PLUGINS = "eventgate_engine_plugins"
# prometheus_client's standard process metric: a changed value means the engine restarted.
PROCESS_START = "process_start_time_seconds"


class EngineMetrics:
    """The request-latency histogram and scrape-time gauges of one engine instance."""

    def __init__(self, pool: ConnectionPool, plugins: PluginRegistry) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            REQUEST_DURATION, "HTTP request latency",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.registry.register(_ScrapeCollector(pool, plugins))
        # process_start_time_seconds and the process' CPU and memory: what tells a watcher
        # that counters started again from zero.
        ProcessCollector(registry=self.registry)

    def average_response_ms(self) -> float:
        total = count = 0.0
        for family in self.latency.collect():
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total += sample.value
                elif sample.name.endswith("_count"):
                    count += sample.value
        return round(total / count * 1000, 3) if count else 0.0


class _ScrapeCollector(Collector):
    """Gauges read at scrape time, so they are never stale: events by type, pool, plugins."""

    def __init__(self, pool: ConnectionPool, plugins: PluginRegistry) -> None:
        self.pool = pool
        self.plugins = plugins

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(DATABASE_UP, "1 when the database answers")
        events = GaugeMetricFamily(EVENTS, "events by type",
                                   labels=["event_type"])
        try:
            with self.pool.connection(timeout=DB_TIMEOUT_S) as conn:
                counts = store.event_counts(conn)
            up.add_metric([], 1)
            for event_type, count in counts.items():
                events.add_metric([event_type], count)
        except Exception:  # a scrape must answer even with the database down
            up.add_metric([], 0)
        yield up
        yield events
        stats = self.pool.get_stats()
        pool_size = GaugeMetricFamily(POOL_CONNECTIONS, "connections in the pool",
                                      labels=["state"])
        pool_size.add_metric(["open"], stats.get("pool_size", 0))
        pool_size.add_metric(["idle"], stats.get("pool_available", 0))
        pool_size.add_metric(["waiting_requests"], stats.get("requests_waiting", 0))
        pool_size.add_metric(["max"], stats.get("pool_max", 0))
        yield pool_size
        loaded = GaugeMetricFamily(PLUGINS, "plugins", labels=["state"])
        loaded.add_metric(["loaded"], len(self.plugins.get_all()))
        loaded.add_metric(["active"], len(self.plugins.get_active_plugins()))
        loaded.add_metric(["failed"], len(self.plugins.get_errors()))
        yield loaded


def health(pool: ConnectionPool, plugins: PluginRegistry,
           final_migration: int) -> dict[str, Any]:
    """The /health report; `final_migration` is the bundle's last version, which the ledger
    must hold for the migration check to be complete."""
    checks = {"database": "unknown", "plugins": "unknown", "migration": "unknown"}
    errors: list[str] = []
    try:
        with pool.connection(timeout=DB_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
            checks["database"] = "healthy"
            complete = store.migration_complete(conn, final_migration)
            checks["migration"] = "complete" if complete else "pending"
            if not complete:
                errors.append(f"migration {final_migration:03d} is not in the ledger")
    except Exception as exc:  # any failure to reach the database is the finding itself
        checks["database"] = "error"
        errors.append(f"database: {type(exc).__name__}: {str(exc).strip()[:200]}")
    loaded = len(plugins.get_active_plugins())
    checks["plugins"] = "healthy" if loaded else "error"
    if not loaded:
        errors.append("no plugin is loaded")
    errors += [f"plugin {e.plugin}: {e.error}" for e in plugins.get_errors()]
    failing = [name for name, state in checks.items() if state not in ("healthy", "complete")]
    return {"status": "unhealthy" if failing else "healthy",
            "timestamp": datetime.now(UTC), "version": __version__, "checks": checks,
            "failing": failing, "errors": errors}


def guide_metrics(pool: ConnectionPool, plugins: PluginRegistry,
                  metrics: EngineMetrics) -> dict[str, Any]:
    with pool.connection(timeout=DB_TIMEOUT_S) as conn:
        by_type = store.event_counts(conn)
    stats = pool.get_stats()
    return {
        "events": {"total": sum(by_type.values()), "by_type": by_type},
        "performance": {"avg_response_time": metrics.average_response_ms(),
                        "active_connections": stats.get("pool_size", 0)
                        - stats.get("pool_available", 0)},
        "plugins": {"loaded": len(plugins.get_all()),
                    "active": len(plugins.get_active_plugins())},
    }
