"""The Prometheus alert rules parse and name only metrics the code exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from analytics.metrics import ALL_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_alert_rules_parse_and_name_real_metrics() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "BufferGrowing",
        "ConsumerLagGrowing",
        "FlushStalled",
        "ErrorSpike",
        "Ingest5xx",
    } <= set(alerts)
    for name, rule in alerts.items():
        used = set(re.findall(r"\bsa_[a-z_]+", rule["expr"]))
        assert used, name
        assert used <= set(ALL_NAMES), (name, used - set(ALL_NAMES))
        assert rule["labels"]["severity"] in {"warning", "critical"}
