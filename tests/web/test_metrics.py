"""Prometheus metrics and readiness, against real services (alert rules: tests/unit)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings
from analytics.storage.projects import NewProject
from tests.support.net import TcpProxy
from tests.support.stack import post, scrape, start_edge, wait_for


def total(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(prefix))


async def test_edge_metrics_move_with_traffic_and_rejections(
    http: aiohttp.ClientSession, edge: str, project: NewProject
) -> None:
    before = await scrape(http, f"{edge}/metrics")
    status, _ = await post(
        http,
        f"{edge}/api/events/batch/",
        {"events": [{"event_name": "m", "event_source": "w"}] * 5 + [{"event_source": "w"}]},
        project.public_key,
    )
    assert status == 202
    status, _ = await post(
        http,
        f"{edge}/api/events/ingest/",
        {"event_name": "x" * 300, "event_source": "w"},
        project.public_key,
    )
    assert status == 400
    after = await scrape(http, f"{edge}/metrics")
    accepted = f'sa_ingest_events_total{{outcome="accepted",project="{project.project_id}"}}'
    assert after[accepted] - before.get(accepted, 0) == 5
    rejected = f'sa_ingest_events_total{{outcome="rejected",project="{project.project_id}"}}'
    assert after[rejected] - before.get(rejected, 0) == 1
    too_long = 'sa_ingest_rejections_total{reason="event_name_too_long"}'
    assert after[too_long] - before.get(too_long, 0) == 1
    assert total(after, 'sa_ingest_requests_total{endpoint="batch",status="202"}') >= 1
    assert total(after, "sa_ingest_request_duration_seconds_count") > total(
        before, "sa_ingest_request_duration_seconds_count"
    )


async def test_worker_metrics_move_when_events_flow(
    http: aiohttp.ClientSession,
    edge: str,
    worker: WorkerProcess,
    settings: Settings,
    project: NewProject,
) -> None:
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    before = await scrape(http, url)
    status, _ = await post(
        http,
        f"{edge}/api/events/batch/",
        {"events": [{"event_name": "w", "event_source": "w"}] * 7},
        project.public_key,
    )
    assert status == 202

    async def moved() -> dict[str, float] | None:
        now = await scrape(http, url)
        done = (
            total(now, 'sa_sink_events_total{outcome="new"}')
            - total(before, 'sa_sink_events_total{outcome="new"}')
            >= 7
        )
        return now if done else None

    after = await wait_for(moved)
    assert total(after, "sa_bridge_events_total") - total(before, "sa_bridge_events_total") >= 7
    assert total(after, "sa_flush_duration_seconds_count") > total(
        before, "sa_flush_duration_seconds_count"
    )
    assert after["sa_last_flush_timestamp_seconds"] > 0
    assert "sa_buffer_depth" in after
    for name in ("sa_consumer_lag_messages", "sa_processing_lag_seconds"):
        assert any(k.startswith(name) for k in after), name


async def test_readyz_fails_when_postgres_is_unreachable(
    http: aiohttp.ClientSession,
    settings_factory: Callable[..., Settings],
    database_url: str,
) -> None:
    host_port = database_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = await TcpProxy(host, int(port)).start()
    proxied = database_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    settings = settings_factory(database_url=proxied)
    runner = await start_edge(settings)
    url = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with http.get(f"{url}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["checks"] == {
                "redis": "ok",
                "postgres": "ok",
                "kafka": "ok",
            }
        await proxy.stop()  # the network to PostgreSQL is gone
        async with http.get(f"{url}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
            assert body["checks"]["postgres"].startswith("fail") and body["checks"]["redis"] == "ok"
            assert body["checks"]["kafka"] == "ok"
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200  # alive, just not ready
    finally:
        await runner.cleanup()
        await proxy.stop()
