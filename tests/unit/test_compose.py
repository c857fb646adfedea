"""``docker-compose.yml`` and the ``Dockerfile`` agree with the code (no Docker engine needed).

What is checked is what would only show up at ``docker compose up``: every variable given to
the stack is a real setting that parses, the addresses point at the compose services, the
buffer is durable, the workers scale, start-up order waits for healthy services, and the
image holds every package the commands import.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from analytics.pipeline.kafka import bootstrap
from analytics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "edge", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the service's process would build: from its environment, as the app does."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for key, value in environment(service).items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "kafka", *APP_SERVICES} <= set(services)


def test_healthchecks_except_the_one_shot_migrate(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "migrate":
            assert "healthcheck" not in service
            assert "restart" not in service or service["restart"] == "no"
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


def test_depends_on_waits_for_real_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, spec in depends.items():
            assert dep in services, (name, dep)
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (name, dep)
            elif condition == "service_completed_successfully":
                assert dep == "migrate", (name, dep)
            else:
                pytest.fail(f"{name} -> {dep}: condition {condition!r} waits for nothing")
    # Migrations need the database; the workers need everything they talk to at start.
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("edge", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert {"kafka", "redis"} <= set(services["worker"]["depends_on"])
    assert "redis" in services["edge"]["depends_on"]


def test_data_lives_in_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    mounts = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        "kafka": environment(services["kafka"]).get("KAFKA_LOG_DIRS", "/var/lib/kafka/data"),
    }
    for name, path in mounts.items():
        volumes = [str(v) for v in services[name].get("volumes", [])]
        named = [v.split(":", 1)[0] for v in volumes if v.split(":", 1)[1:] == [path]]
        assert named and named[0] in declared, f"{name}: no named volume at {path}"


def test_kafka_is_apache_kafka_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].split(":", 1)[0] == "apache/kafka"
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # listener name -> "host:port" (an empty host binds every interface)
    listeners = dict(item.split("://", 1) for item in env["KAFKA_LISTENERS"].split(","))
    assert controller in listeners
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == node
    assert voter == f"kafka:{listeners[controller].rsplit(':', 1)[1]}"
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert controller not in advertised and set(advertised) <= set(listeners)
    # A single broker: internal topics (consumer offsets, transactions) cannot have 3 replicas.
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_app_environment_is_real_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        env = environment(services[name])
        assert set(env) <= fields, f"{name}: unknown variables {set(env) - fields}"
        settings_of(services[name], monkeypatch)  # parses (a ValidationError fails the test)


def test_addresses_point_at_the_compose_services(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_env = environment(services["postgres"])
    kafka_env = environment(services["kafka"])
    advertised = dict(
        item.split("://", 1) for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    for name in APP_SERVICES:
        settings = settings_of(services[name], monkeypatch)
        db = urlsplit(settings.database_url)
        assert (db.hostname, db.port or 5432) == ("postgres", 5432), name
        assert db.username == postgres_env["POSTGRES_USER"], name
        assert db.password == postgres_env["POSTGRES_PASSWORD"], name
        assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"], name
        redis = urlsplit(settings.redis_url)
        assert (redis.scheme, redis.hostname, redis.port or 6379) == ("redis", "redis", 6379)
        # What the broker advertises is where clients go after bootstrap: it must match.
        assert bootstrap(settings.kafka_broker) in set(advertised.values()), name
    for name in ("edge", "worker"):
        assert (
            settings_of(services[name], monkeypatch).topic_partitions
            == settings_of(services["migrate"], monkeypatch).topic_partitions
        )


def test_edge_publishes_its_port(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = services["edge"]
    settings = settings_of(edge, monkeypatch)
    assert settings.http_host == "0.0.0.0"  # inside its container
    published = [str(p) for p in edge.get("ports", [])]
    assert any(p.rsplit(":", 1)[-1] == str(settings.http_port) for p in published), published
    assert str(settings.http_port) in " ".join(edge["healthcheck"]["test"])


def test_worker_scales(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = services["worker"]
    argv = command(worker)
    assert argv[:1] == ["analytics"] and "worker" in argv, argv
    assert "container_name" not in worker
    # Replicas cannot share a host port; a published container port alone would be fine.
    for port in worker.get("ports", []):
        assert ":" not in str(port), port
    settings = settings_of(worker, monkeypatch)
    assert str(settings.worker_web_port) in " ".join(worker["healthcheck"]["test"])
    # The worker binds its web server to loopback unless told otherwise: others must reach it.
    assert settings.worker_web_host == "0.0.0.0"


def test_redis_keeps_an_append_only_file(services: dict[str, dict[str, Any]]) -> None:
    argv = command(services["redis"])
    assert argv[argv.index("--appendonly") + 1] == "yes"


def test_image_holds_what_the_commands_need(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY\s+(\S+)\s+\1\s*$", dockerfile, re.MULTILINE))
    pyproject = (ROOT / "pyproject.toml").read_text()
    packaged = set(re.findall(r'"(\w+)"', pyproject.split("packages = [", 1)[1].split("]", 1)[0]))
    assert {"analytics", "agents", "tables", "web"} <= packaged
    assert packaged <= copied, packaged - copied
    assert re.search(r"^COPY pyproject\.toml README\.md ", dockerfile, re.MULTILINE)
    assert re.search(r"uv pip install .*\s\.\s*$", dockerfile, re.MULTILINE)
    for name in APP_SERVICES:
        argv = command(services[name])
        # One way to start each process: the console script from [project.scripts].
        assert argv[:1] == ["analytics"], (name, argv)
    assert "analytics = " in pyproject
