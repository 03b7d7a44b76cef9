"""deploy/monitoring/: the Prometheus alert rules and the Grafana dashboard, against the metrics
the services really export (their Prometheus registry), and the operations guide's list of
metrics against the same registry, both ways."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import identity.app  # noqa: F401  (each service registers its own metrics on import)
import ledger.app  # noqa: F401
import notifier.app  # noqa: F401
import tariff.app  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
OURS = re.compile(r"\b(?:billing|notifier)_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> dict[str, str]:
    """Every metric family of the suite in the registry: its name, as the guide writes it, by type."""
    return {family.name + ("_total" if family.type == "counter" else ""): family.type
            for family in REGISTRY.collect() if OURS.fullmatch(family.name + "_")}


def series_names() -> set[str]:
    """The names a query can use: a counter's ``_total``, a histogram's buckets, sum and count."""
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def named_in(expr: str) -> set[str]:
    return set(OURS.findall(expr))


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_the_registry_holds_the_suite_metrics() -> None:
    assert {"billing_consumer_lag", "billing_http_requests_total", "notifier_deliveries_total"} <= set(exported())


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the structure checks still run")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_an_alert_with_severity_summary_and_real_metrics() -> None:
    known = series_names()
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0m")), rule["alert"]
        assert named_in(rule["expr"]) and named_in(rule["expr"]) <= known, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_the_rules_cover_what_operators_must_hear_about() -> None:
    used = set().union(*(named_in(rule["expr"]) for rule in rules()))
    assert {"billing_consumer_lag", "billing_outbox_backlog", "billing_events_dead_lettered_total",
            "billing_publish_failures_total", "billing_http_requests_total",
            "billing_conflicting_duplicates_total", "billing_db_connections_waiting"} <= used


def test_the_structure_check_catches_a_metric_that_does_not_exist() -> None:
    assert not named_in("rate(billing_events_handeld_total[5m])") <= series_names()


def test_the_dashboard_shows_every_exported_metric_and_only_those() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 36
    panels = document["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"]["type"] == "prometheus" and panel["targets"]
    used = set().union(*(named_in(expr) for expr in dashboard_exprs()))
    assert used <= series_names()
    shown = {name for name in exported() if {name, f"{name}_bucket"} & used}
    assert shown == set(exported())


def test_the_guide_lists_exactly_the_exported_metrics() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    table = set(re.findall(r"^\| `((?:billing|notifier)_[a-z_]+)` \| (counter|gauge|histogram) \|", guide, re.M))
    assert table == set(exported().items())
