"""The edge against its own OpenAPI document (``web/openapi.py``).

The document must be valid OpenAPI 3.1 and name every route the edge registers
(checked without services in tests/unit/test_openapi.py), and be true:
schemathesis generates requests for every operation (valid ones, and invalid
ones for the negative mode), sends them over a real socket to a running edge
with the key the operation's security scheme asks for, and checks each answer:
never a 5xx, a documented status, the documented content type, headers and
body schema. Events are stored first (as the sink does) so the dashboard
answers carry real rows for the body schemas to judge.

Schemathesis 4.x drives the cases synchronously (``requests``), so they run
in a plain thread while the edge serves on the test's event loop. The
values that once broke the server (NUL characters, calendar-limit dates)
have regression tests at the end of the module and are fuzzed like any other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import hypothesis
import orjson
import pytest
import redis.asyncio as aioredis
import requests
import schemathesis
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics.events.models import EventRow
from analytics.events.times import to_us
from analytics.settings import Settings
from analytics.storage import projects
from analytics.storage.events import PartitionCache, write_events
from analytics.storage.projects import NewProject
from tests.support.openapi import loaded
from tests.support.stack import start_edge
from web.openapi import PATH, Limits, build_document

# Cases per operation and generation mode: 15 operations x 2 modes x 50 takes about
# 15 s on two cores. Statuses that need a fault or a setting (413, 415, 429, 503) are
# not reached here; tests/web/test_ingest.py and test_projects.py cause them.
MAX_EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def test_the_edge_serves_the_document(
    http: aiohttp.ClientSession, edge: str, settings: Settings
) -> None:
    async with http.get(f"{edge}{PATH}") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == build_document(Limits.of(settings))


# (minutes ago, source, name): in the default ranges of every dashboard endpoint but one.
SEED_EVENTS = [
    (3, "web", "page_view"),
    (7, "web", "click"),
    (70, "ios", "page_view"),
    (60 * 24 * 3, "web", "signup"),
]


async def _seed(db: asyncpg.Pool, project_id: str) -> None:
    """Raw rows, aggregates and a summary, written as the sink writes them."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    async with db.acquire() as conn:
        for i, (minutes_ago, source, name) in enumerate(SEED_EVENTS):
            moment = now - timedelta(minutes=minutes_ago)
            rows.append(
                EventRow(
                    project_id=project_id,
                    event_id=f"seed-{i}",
                    event_source_id=await projects.resolve_source(conn, project_id, source),
                    event_source=source,
                    user_id=f"user_{i % 2}",
                    session_id=None if i == 3 else f"sess_{i}",
                    event_name=name,
                    properties=orjson.dumps({"page": "/", "n": i, "tags": ["a"]}).decode(),
                    timestamp_us=to_us(moment),
                    sample_rate=0.5 if i == 2 else 1.0,
                    received_at_us=to_us(moment),
                    ip_address=None if i == 1 else "203.0.113.7",
                    user_agent=None if i == 1 else "openapi-test/1.0",
                )
            )
        await write_events(conn, rows, PartitionCache())


def _key_for(operation: Any, project: NewProject) -> str | None:
    """The key the operation's security requirements name (public, private or none)."""
    schemes = {
        name for requirement in operation.definition.raw.get("security", []) for name in requirement
    }
    if "privateKey" in schemes:
        return project.private_key
    if "publicKey" in schemes:
        return project.public_key
    return None


def _check_operation(
    operation: Any, mode: GenerationMode, edge: str, key: str | None
) -> str | None:
    """Run one operation's cases in one generation mode; the failure report, if any."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    strategy = operation.as_strategy(generation_mode=mode)
    with requests.Session() as session:

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases on every run: CI is not a lottery
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=edge, headers=headers, session=session)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                return f"{operation.label} [positive]: no valid request could be generated"
            # Nothing in the operation can be made invalid (no parameters, or only
            # free-form strings): the positive run covered it.
        except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            return f"{operation.label} [{mode.value}]: {exc}"
    return None


def _fuzz(schema: BaseSchema, edge: str, project: NewProject) -> list[str]:
    """Every operation in both generation modes; the failures, each with a curl to reproduce."""
    failures = []
    for operation in loaded(schema):
        key = _key_for(operation, project)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _check_operation(operation, mode, edge, key)
            if failure is not None:
                failures.append(failure)
    return failures


@pytest.fixture(scope="module")
async def own_edge(
    settings_factory: Callable[..., Settings],
    db: asyncpg.Pool,
    redis_client: aioredis.Redis,  # deletes the session's test streams at the end
) -> AsyncIterator[str]:
    """An edge on its own stream, which no bridge reads.

    What this module ingests (fuzzed events, and events the sink cannot store: see
    the xfails at the end) stays in Redis and never reaches the session's worker,
    where one unstorable event would stall a partition for every later test.
    """
    own = settings_factory()
    runner = await start_edge(own)
    yield f"http://127.0.0.1:{own.http_port}"
    await runner.cleanup()


@pytest.mark.timeout(300)
async def test_the_edge_conforms_to_its_document(
    own_edge: str, db: asyncpg.Pool, project: NewProject
) -> None:
    await _seed(db, project.project_id)
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{own_edge}{PATH}")
    started = time.monotonic()
    failures = await asyncio.to_thread(_fuzz, schema, own_edge, project)
    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} operations fail ({elapsed:.0f}s):\n\n" + "\n\n".join(
        failures
    )


# --- values that once crashed the server or were accepted but unstorable ----------------
# (NUL characters reaching PostgreSQL, calendar-limit dates): each must now be a 400,
# or a per-event rejection inside a 202 batch.

EVENT = {"event_name": "page_view", "event_source": "web"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/api/events/query/", {"event_name": "a\x00b"}),
        pytest.param("/api/events/query/", {"user_id": "a\x00b"}),
        pytest.param("/api/events/aggregations/hourly/", {"event_name": "a\x00b"}),
        pytest.param(
            "/api/events/query/",
            {"start_date": "9999-12-31T12:00:00Z", "end_date": "9999-12-31T13:00:00Z"},
        ),
        pytest.param(
            "/api/events/aggregations/daily/",
            {"start_date": "0001-01-01", "end_date": "0001-01-02"},
        ),
        pytest.param(
            "/api/events/summaries/daily/", {"start_date": "0001-01-01", "end_date": "0001-01-01"}
        ),
    ],
)
async def test_dashboard_edge_values_are_not_server_errors(
    http: aiohttp.ClientSession, edge: str, project: NewProject, path: str, params: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {project.private_key}"}
    async with http.get(f"{edge}{path}", params=params, headers=headers) as resp:
        assert resp.status in (200, 400), await resp.text()


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param("/api/events/ingest/", {**EVENT, "event_source": "w\x00b"}, 400),
        pytest.param("/api/events/batch/", {"events": [{**EVENT, "event_source": "w\x00b"}]}, 202),
        pytest.param("/api/events/ingest/", {**EVENT, "event_name": "a\x00b"}, 400),
        pytest.param("/api/events/ingest/", {**EVENT, "properties": {"k": "a\x00b"}}, 400),
        pytest.param(
            "/api/events/ingest/", {**EVENT, "timestamp": "0001-01-01T00:00:00+05:00"}, 400
        ),
    ],
)
async def test_ingest_refuses_what_cannot_be_stored(
    http: aiohttp.ClientSession,
    own_edge: str,
    project: NewProject,
    path: str,
    body: dict[str, Any],
    status: int,
) -> None:
    """A batch rejects the bad event in its results (202); a single event is a 400."""
    headers = {"Authorization": f"Bearer {project.public_key}", "Content-Type": "application/json"}
    async with http.post(f"{own_edge}{path}", data=orjson.dumps(body), headers=headers) as resp:
        answer = await resp.json(content_type=None)
    assert resp.status == status, answer
    if status == 202:
        assert answer["rejected"] == 1, answer
