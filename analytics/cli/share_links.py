"""``analytics share-link PROJECT_ID``: a read-only link to a project's dashboard.

The link (``PUBLIC_URL/share/<token>``) shows the dashboard page without a key and
reads only the stats API; ``--list`` shows a project's links by hint, ``--revoke HINT``
stops one within seconds.
"""

from __future__ import annotations

from typing import Any

import click
from faust.cli import argument, option

from analytics.cli.output import connect, emit
from analytics.settings import Settings
from analytics.storage import projects, share_links


def register(app: Any, settings: Settings) -> None:
    """Attach ``share-link`` to ``app``."""

    @app.command(
        argument("project_id"),
        option("--list", "show", is_flag=True, help="List the project's links instead."),
        option("--revoke", default=None, help="Revoke the link with this token or hint."),
    )
    async def share_link(self: Any, project_id: str, show: bool, revoke: str | None) -> None:
        """Make a read-only dashboard link (shown once); --list or --revoke HINT manage them."""
        conn = await connect(settings)
        try:
            if not await projects.project_exists(conn, project_id):
                raise click.ClickException(f"unknown project {project_id!r}")
            if show:
                rows = await share_links.list_links(conn, project_id)
                data = [{"hint": r[0], "created_at": r[1], "revoked_at": r[2]} for r in rows]
                text = "\n".join(
                    f"{d['hint']}…  made {d['created_at']:%Y-%m-%d %H:%M}"
                    + (f"  revoked {d['revoked_at']:%Y-%m-%d %H:%M}" if d["revoked_at"] else "")
                    for d in data
                )
                emit(self, data, text or "no share links")
                return
            if revoke is not None:
                count = await share_links.revoke_links(conn, project_id, revoke)
                if not count:
                    raise click.ClickException(f"no live share link matches {revoke!r}")
                emit(self, {"revoked": count}, f"revoked {count} share link(s)")
                return
            token = await share_links.create_link(conn, project_id)
        finally:
            await conn.close()
        url = f"{settings.public_base_url()}/share/{token}"
        emit(
            self,
            {"project_id": project_id, "url": url, "token": token},
            f"{url}\nanyone with this link sees the project's stats (read-only);"
            f" revoke with: analytics share-link {project_id} --revoke {token[:15]}",
        )
