"""DAG folder policies: imports cleanly, no connection or Variable lookups at parse time, docs, owner, retries;
one DAG per product and layer, and a broken or new product changes only its own DAGs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"


def parse(folder: Path, lookups: Path, root: Path = ROOT) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW__SECRETS__BACKEND": "parse_probe.RefusingSecrets",
            "PARSE_PROBE_LOOKUPS": str(lookups),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(root / "plugins")]),
        }
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "parse_probe.py"), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["lookups"] = lookups.read_text().split() if lookups.exists() else []
    return report


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    return parse(DAGS, tmp_path_factory.mktemp("parse") / "lookups.txt")


def test_the_probe_catches_a_parse_time_lookup(tmp_path):
    """The lookup check can fail: a DAG file that reads a connection while parsing is caught."""
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "greedy.py").write_text(
        "from airflow.sdk import DAG, BaseHook\n"
        "BaseHook.get_connection('warehouse')\n"
        "dag = DAG('greedy', schedule=None)\n"
    )
    report = parse(tmp_path / "dags", tmp_path / "lookups.txt")
    assert "connection:warehouse" in report["lookups"] and report["import_errors"]


def test_every_dag_file_imports_without_errors(parsed):
    assert parsed["import_errors"] == {}
    files = {p.name for p in DAGS.glob("*.py")}
    assert files == {d["file"] for d in parsed["dags"].values()}, "every file defines a DAG"


def test_no_connection_or_variable_lookup_at_parse_time(parsed):
    assert parsed["lookups"] == []


def expected_dag_ids() -> dict[str, str]:
    """dag_id -> the thin file that generates it: one DAG per product and layer (dbt: per job)."""
    from medallion import config

    expected = {"freshness": "freshness.py", "docs": "docs.py"}  # shared: every product's
    for product_id in config.product_ids():
        product = config.product(product_id)
        expected[f"bronze_{product_id}"] = "bronze.py"
        expected[f"bronze_{product_id}_reconcile"] = "bronze_reconcile.py"
        expected.update({product.dag_id(job.name): f"{job.layer}.py" for job in product.dbt_jobs})
    return expected


def test_one_dag_per_product_and_layer_and_policies_hold(parsed):
    """dag_id = `<layer or job>_<product>` (`freshness`, `docs`: shared); the product's owner and tag say whose."""
    from medallion import config

    assert {d: v["file"] for d, v in parsed["dags"].items()} == expected_dag_ids()
    for dag_id, dag in parsed["dags"].items():
        assert not dag["file"].startswith("dbt_"), "Cosmos/dbt shadow dbt_* module names"
        product = config.product_of_dag(dag_id)
        if product is None:
            assert dag_id in ("freshness", "docs") and dag["owner"] == "data-platform", dag_id
        else:
            assert dag["owner"] == config.product(product).owner and product in dag["tags"], dag_id
            assert f"`{product}`" in dag["doc_md"], f"{dag_id}: its docs name the product"
        assert dag["tags"], dag_id
        assert min(dag["retries"]) >= 1, f"{dag_id}: every task retries"
        assert dag["on_failure_callback"], f"{dag_id}: failures email on-call (dagkit.default_args)"
        assert len(dag["doc_md"]) > 400 and "fail" in dag["doc_md"].lower(), f"{dag_id}: doc_md for on-call"
        others = {m for p, models in models_by_product().items() if p != product for m in models}
        named = {m for m in others if f"`{m}`" in dag["doc_md"] or f"({m}" in dag["doc_md"]}
        assert not named, f"{dag_id}: its docs name another product's models {sorted(named)}"


def models_by_product() -> dict[str, set[str]]:
    """dbt model names per product folder (models/<layer>/<product>/), from the manifest."""
    from medallion import config

    manifest = json.loads(config.DBT_MANIFEST.read_text())
    out: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and len(node["fqn"]) >= 4:
            out.setdefault(node["fqn"][2], set()).add(node["name"])
    return out


LAYER_DAGS = {"bronze_browser_infra": "BRONZE", "silver_browser_infra": "SILVER", "gold_browser_infra": "GOLD"}


def test_every_layer_dag_has_a_deadline_that_emails_on_call(parsed):
    """A layer run that is not done in time sends a LATE email; the allowance comes from dagkit (env)."""
    from medallion import dagkit

    assert set(LAYER_DAGS) <= set(parsed["dags"]), "the layer DAGs exist"
    for dag_id, layer in LAYER_DAGS.items():
        allowed = getattr(dagkit, f"{layer}_DEADLINE").total_seconds() / 60
        assert parsed["dags"][dag_id]["deadlines"] == [{
            "reference": "DagRunQueuedAtDeadline", "minutes": allowed,
            "callback": "medallion.oncall.on_deadline_missed", "kwargs": {"within_minutes": allowed},
        }], dag_id  # fmt: skip


def test_deadline_allowances_come_from_the_environment():
    """MEDALLION_<LAYER>_DEADLINE_MINUTES sets each layer's allowance; nonsense fails naming the variable."""

    def allowances(**env: str) -> subprocess.CompletedProcess:
        code = "from medallion import dagkit as d; print([x.total_seconds() / 60 for x in " \
               "(d.BRONZE_DEADLINE, d.SILVER_DEADLINE, d.GOLD_DEADLINE)])"  # fmt: skip
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_DEADLINE_MINUTES")}
        return subprocess.run([sys.executable, "-c", code], env={**clean, "PYTHONPATH": str(ROOT / "plugins"), **env},
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    assert allowances().stdout.strip() == "[45.0, 60.0, 60.0]", "defaults"
    out = allowances(MEDALLION_SILVER_DEADLINE_MINUTES="20", MEDALLION_GOLD_DEADLINE_MINUTES="90.5")
    assert out.stdout.strip() == "[45.0, 20.0, 90.5]", out.stderr[-2000:]
    out = allowances(MEDALLION_GOLD_DEADLINE_MINUTES="soon")
    assert out.returncode != 0
    assert "ConfigError: MEDALLION_GOLD_DEADLINE_MINUTES must be a number of minutes, got 'soon'" in out.stderr


def test_bronze_dag_shape(parsed):
    bronze = parsed["dags"]["bronze_browser_infra"]
    assert bronze["timetable"] == "CronDataIntervalTimetable" and bronze["catchup"] is True
    assert bronze["params"] == ["full_refresh", "tables"]


def test_each_dag_file_parses_in_under_a_second(parsed):
    slow = {f: s for f, s in parsed["file_seconds"].items() if s >= 1.0}
    assert not slow, f"DAG files that parse in >= 1 s once imports are warm: {slow}"
