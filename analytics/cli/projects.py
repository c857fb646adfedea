"""Project commands: create and list projects, rotate and revoke keys, show and set settings.

Changes reach running edges within ``KEY_CACHE_SECONDS`` (5 s): the edge
caches keys and settings that long. A rotated key's predecessor keeps working
for ``--grace-hours`` (default 24) so clients can be redeployed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import click
import orjson
from faust.cli import argument, option

from analytics.cli.output import connect, emit
from analytics.errors import ConfigError
from analytics.projects.api_keys import KeyKind
from analytics.projects.policy import (
    ProjectSettings,
    SourceSettings,
    parse_value,
    project_settings,
    source_settings,
)
from analytics.settings import Settings
from analytics.storage import projects

KINDS = click.Choice(["public", "private"])


async def _open(settings: Settings, project_id: str) -> asyncpg.Connection:
    conn = await connect(settings)
    if not await projects.project_exists(conn, project_id):
        await conn.close()
        raise click.ClickException(f"unknown project {project_id!r}")
    return conn


def register(app: Any, settings: Settings) -> None:
    """Attach the key and settings commands to ``app``."""

    @app.command(argument("name"))
    async def create_project(self: Any, name: str) -> None:
        """Create a project and print its id, public key and private key (shown once)."""
        conn = await connect(settings)
        try:
            project = await projects.create_project(conn, name)
        finally:
            await conn.close()
        emit(
            self,
            {
                "project_id": project.project_id,
                "name": project.name,
                "public_key": project.public_key,
                "private_key": project.private_key,
            },
            f"project_id:  {project.project_id}\n"
            f"name:        {project.name}\n"
            f"public_key:  {project.public_key}   (ingest only)\n"
            f"private_key: {project.private_key}   (dashboard only; store it now)",
        )

    @app.command()
    async def list_projects(self: Any) -> None:
        """List projects."""
        conn = await connect(settings)
        try:
            rows = await projects.list_projects(conn)
        finally:
            await conn.close()
        data = [
            {"project_id": r["id"], "name": r["name"], "created_at": r["created_at"]} for r in rows
        ]
        if self.json:
            self.say(orjson.dumps(data, default=str).decode())
        else:
            self.say(
                self.tabulate(
                    [(d["project_id"], d["name"], str(d["created_at"])) for d in data],
                    headers=["project_id", "name", "created_at"],
                )
            )

    @app.command(
        argument("project_id"),
        argument("kind", type=KINDS),
        option(
            "--grace-hours",
            type=float,
            default=24.0,
            show_default=True,
            help="How long the previous key keeps working.",
        ),
    )
    async def rotate_key(self: Any, project_id: str, kind: str, grace_hours: float) -> None:
        """Issue a new public or private key; the old one expires after the grace period."""
        conn = await _open(settings, project_id)
        try:
            key, old = await projects.rotate_key(
                conn, project_id, KeyKind(kind), timedelta(hours=grace_hours)
            )
        finally:
            await conn.close()
        emit(
            self,
            {
                "project_id": project_id,
                "kind": kind,
                "key": key,
                "old_keys_expire_in_hours": grace_hours,
                "old_keys": old,
            },
            f"new {kind} key: {key}\n{old} previous key(s) stop working in {grace_hours:g} h",
        )

    @app.command(argument("project_id"), argument("kind", type=KINDS))
    async def revoke_key(self: Any, project_id: str, kind: str) -> None:
        """Revoke every live public or private key of a project, effective within seconds."""
        conn = await _open(settings, project_id)
        try:
            count = await projects.revoke_keys(conn, project_id, KeyKind(kind))
        finally:
            await conn.close()
        emit(
            self,
            {"project_id": project_id, "kind": kind, "revoked": count},
            f"revoked {count} {kind} key(s); run rotate-key to issue a new one",
        )

    @app.command(
        argument("project_id"), option("--source", default=None, help="A source's overrides.")
    )
    async def show_settings(self: Any, project_id: str, source: str | None) -> None:
        """Show a project's effective settings (or one source's overrides)."""
        conn = await _open(settings, project_id)
        try:
            stored = await projects.stored_settings(conn, project_id, source)
        finally:
            await conn.close()
        effective: ProjectSettings | SourceSettings = (
            source_settings(stored) if source else project_settings(stored)
        )
        data = effective.model_dump(mode="json")
        if self.json:
            self.say(
                orjson.dumps(
                    {
                        "project_id": project_id,
                        "source": source,
                        "settings": data,
                        "set": sorted(stored),
                    }
                ).decode()
            )
        else:
            rows = [
                (k, orjson.dumps(v).decode(), "set" if k in stored else "default")
                for k, v in data.items()
            ]
            self.say(self.tabulate(rows, headers=["setting", "value", ""]))

    @app.command(
        argument("project_id"),
        argument("name"),
        argument("value"),
        option("--source", default=None, help="Set a source's override instead."),
    )
    async def set_setting(
        self: Any, project_id: str, name: str, value: str, source: str | None
    ) -> None:
        """Set one setting (JSON for lists and objects, null to unset), validated."""
        try:
            # Validated before connecting, so a typo needs no database.
            parse_value(name, value, source=source is not None)
        except ConfigError as exc:
            raise click.ClickException(exc.detail) from exc
        conn = await _open(settings, project_id)
        try:
            change = await projects.change_setting(conn, project_id, name, value, source)
        except ConfigError as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            await conn.close()
        parsed = change.new
        emit(
            self,
            {"project_id": project_id, "source": source, "setting": name, "value": parsed},
            f"{name} = {orjson.dumps(parsed).decode()} (running edges apply it within 5 s)",
        )
