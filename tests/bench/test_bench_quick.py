"""``python -m bench --quick`` runs end to end and reports every figure (how fast is not checked:
CI machines vary; the numbers belong to docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cluster import PRODUCTION_SETTINGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_reports_every_figure(tmp_path: Path, bootstrap_servers: str) -> None:
    output = tmp_path / "bench.json"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=480, check=False,  # a deadline on a loaded CI machine
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(output.read_text())

    figures = {
        "ingestion": ["postings_per_s", "ceiling_postings_per_s", "ratio_to_ceiling"],
        "latency": ["p50_ms", "p99_ms", "max_ms", "ceiling_p50_ms", "ceiling_p99_ms", "ratio_to_ceiling"],
        "replay": ["entries_per_s", "sql_entries_per_s", "ratio_to_sql"],
        "peer": ["commands_per_s", "suite_commands_per_s", "commands_ratio", "rebuild_entries_per_s", "rebuild_ratio"],
        "memory": ["peak_rss_mib", "consumer_1_peak_rss_mib", "consumer_2_peak_rss_mib", "relay_peak_rss_mib",
                   "consumer_1_start_rss_mib", "consumer_2_start_rss_mib", "relay_start_rss_mib"],
        "cpu": ["consumer_1_us_per_movement", "consumer_2_us_per_movement", "relay_us_per_movement",
                "ledger_us_per_movement", "machine_cores_busy",
                "machine_bound_postings_per_s"],
        "day_close": ["charges_per_s", "subscriptions_per_s", "tariff_cpu_us_per_subscription",
                      "tariff_relay_cpu_us_per_subscription"],
        "cabinet": ["cabinet_overview_p95_ms", "slowest_call_p95_ms", "calls_at_once_p95_ms"],
    }
    for section, names in figures.items():
        for name in names:
            value = results[section][name]
            assert isinstance(value, int | float) and value > 0, f"{section}.{name} = {value!r}"
    history = results["history"]  # an account's 100 events, among few and among many
    assert history["small"]["events"] < history["large"]["events"]
    assert all(history[size]["seconds"] > 0 and history[size]["peak_kib"] > 0 for size in ("small", "large"))
    assert history["ratio"] > 0 and history["restore"]["events_per_s"] > 0
    posted = results["ingestion"]["movements"] + results["latency"]["payments"]
    assert results["ingestion"]["postings"] == 2 * posted  # every payment and charge, none refused
    assert results["replay"]["entries"] >= 100_000
    assert results["day_close"]["charges"] > results["day_close"]["subscriptions"]  # a plan each, some an option
    # The targets lead the JSON, each ratio with its ceiling beside it, under the names.
    targets = ["cpu_per_movement_vs_consume", "p99_vs_two_hops", "replay_vs_fold", "verify_vs_fold",
               "day_close_vs_ingestion", "rss_peak_mib_max", "accounts_1m_vs_10k", "overview_vs_slowest_call"]
    leading = [key for name in targets for key in (name, f"{name}_ceiling")]
    assert list(results)[:len(leading)] == leading
    for key in leading:
        assert isinstance(results[key], int | float) and results[key] > 0, f"{key} = {results[key]!r}"
    latency, replay = results["latency"], results["replay"]
    assert results["p99_vs_two_hops_ceiling"] == latency["ceiling_p99_ms"]
    assert results["p99_vs_two_hops"] == pytest.approx(latency["p99_ms"] / latency["ceiling_p99_ms"])
    assert results["replay_vs_fold"] == replay["replay_vs_fold"]
    assert results["verify_vs_fold"] == replay["verify_vs_fold"]
    assert results["replay_vs_fold_ceiling"] == results["verify_vs_fold_ceiling"] == replay["fold_entries_per_s"]
    assert results["day_close_vs_ingestion"] == pytest.approx(
        results["day_close"]["charges_per_s"] / results["day_close_vs_ingestion_ceiling"])
    assert results["day_close_vs_ingestion_ceiling"] == results["ingestion"]["movements_per_s"]
    peaks = [row[f"{name}_peak_rss_mib"] for row in (results["memory"], results["ingestion_large"]["memory"])
             for name in ("consumer_1", "consumer_2", "relay")]
    assert results["rss_peak_mib_max"] == max(peaks) and results["rss_peak_mib_max_ceiling"] == 100
    cabinet = results["cabinet"]
    assert results["overview_vs_slowest_call_ceiling"] == cabinet["slowest_call_p95_ms"]
    assert results["overview_vs_slowest_call"] == pytest.approx(
        cabinet["cabinet_overview_p95_ms"] / cabinet["slowest_call_p95_ms"])
    # The row among many accounts ran on the bench's own cluster, sized as production, the others on the machine's.
    own, machines = results["ingestion_large"]["postgres"], results["ingestion"]["postgres"]
    assert own["server"].startswith("the bench's own cluster") and machines["server"].startswith("the machine's server")
    assert {name: own[name] for name in PRODUCTION_SETTINGS} == PRODUCTION_SETTINGS
    assert "billing suite benchmarks" in completed.stdout
