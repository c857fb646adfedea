"""``deploy/grafana/simple-analytics.json``: valid, covers what an operator watches, and every
metric it queries is one the running edge or worker really exports on ``/metrics``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from analytics.dev.processes import WorkerProcess
from analytics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "simple-analytics.json"
# A histogram is queried through its series; /metrics declares the family.
SERIES_SUFFIXES = ("_bucket", "_sum", "_count")


def queried_metrics(dashboard: dict[str, object]) -> dict[str, set[str]]:
    """Panel title -> the sa_* families its queries name."""
    found: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:  # type: ignore[attr-defined]
        names: set[str] = set()
        for target in panel["targets"]:
            for name in re.findall(r"\bsa_[a-z_]+", target["expr"]):
                for suffix in SERIES_SUFFIXES:
                    if name.endswith(suffix):
                        name = name.removesuffix(suffix)
                names.add(name)
        found[panel["title"]] = names
    return found


async def exported(http: aiohttp.ClientSession, url: str) -> set[str]:
    """Families declared on one /metrics page (``# TYPE`` lines) and sample names."""
    async with http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


async def test_dashboard_names_only_exported_metrics(
    http: aiohttp.ClientSession, edge: str, worker: WorkerProcess, settings: Settings
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    by_panel = queried_metrics(dashboard)
    assert all(by_panel.values()), [t for t, n in by_panel.items() if not n]
    used = set().union(*by_panel.values())
    # What an operator watches: ingest, rejections, buffer, lag, flush latency, errors.
    assert {
        "sa_ingest_events_total",
        "sa_ingest_rejections_total",
        "sa_buffer_depth",
        "sa_buffer_pending",
        "sa_consumer_lag_messages",
        "sa_processing_lag_seconds",
        "sa_flush_duration_seconds",
        "sa_errors_total",
    } <= used
    available = await exported(http, f"{edge}/metrics") | await exported(
        http, f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    )
    missing = {name for name in used if name not in available}
    assert not missing, missing
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
