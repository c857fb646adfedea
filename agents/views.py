"""faust web views on the worker: the live table state of the partitions it holds."""

from __future__ import annotations

import time
from typing import Any

from analytics.realtime import realtime_figures
from analytics.settings import Settings


def local_minutes(live: Any, project_id: str) -> list[tuple[float, dict[str, Any]]]:
    """(window start, value) of every live minute this worker holds for the project."""
    data = live.table.data
    out: list[tuple[float, dict[str, Any]]] = []
    for key in list(data.keys()):
        project, window = key
        if project == project_id:
            out.append((float(window[0]), data[key]))
    return out


def register(app: Any, settings: Settings, live: Any) -> None:
    """Attach ``/healthz`` and ``/live/{project_id}/`` to the worker's web server."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/live/{project_id}/")
    async def live_view(web: Any, request: Any, project_id: str) -> Any:
        minutes = local_minutes(live, project_id)
        figures = realtime_figures(minutes, time.time())
        figures["minutes"] = [
            {"start": start, "events": v.get("n", 0)} for start, v in sorted(minutes)
        ]
        return web.json(figures)
