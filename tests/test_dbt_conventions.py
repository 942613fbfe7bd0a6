"""The dbt project keeps its layer conventions: names, what each layer reads, docs (from the manifest).

The conventions are written in include/dbt/dbt_project.yml, in each layer folder's meta (`layer`,
`model_prefixes`, `reads`); this test reads them back from `make manifest`'s manifest.json, so a new
model that breaks one fails CI with one line naming its file. Known exceptions are listed below, in
one place: a new violation fails, and so does an exception that is no longer needed.
"""

import copy
import json
import sys

import pytest

from medallion import transform

# Models outside staging that still read bronze through source() themselves: none since the
# incremental core models read their touched keys through stg_<product>__<table>_changes (issue 11).
# A name here is an allowed exception; the test fails once it is no longer needed.
KNOWN_SOURCE_READERS: set[str] = set()
# Prefixes used by more than one layer (a prefix names one grain: `fct_` is silver's one row per
# event/run/record, `agg_` gold's aggregates per period): none.
KNOWN_SHARED_PREFIXES: set[str] = set()


def load_manifest() -> dict:
    assert transform.MANIFEST.is_file(), f"{transform.MANIFEST} missing: run `make manifest`"
    return json.loads(transform.MANIFEST.read_text())


def violations(manifest: dict) -> list[str]:
    """Every way the manifest's models and sources break the layer conventions, one line each."""
    nodes = manifest["nodes"]
    models = {uid: n for uid, n in nodes.items() if n["resource_type"] == "model" and n["package_name"] == "medallion"}
    problems, prefixes, source_readers = [], {}, set()
    for node in sorted(models.values(), key=lambda n: n["original_file_path"]):
        where, name = node["original_file_path"], node["name"]
        folder = node["fqn"][1] if len(node["fqn"]) > 2 else "(models/)"
        meta = node["config"].get("meta") or {}
        layer = meta.get("layer")
        if layer is None:
            problems.append(f"{where}: no meta.layer: models/{folder}/ is not a layer of dbt_project.yml")
            continue
        if layer != folder:
            problems.append(
                f"{where}: meta.layer is {layer!r} but the model is in models/{folder}/ (the folder is the layer)"
            )
        allowed_prefixes, reads = meta.get("model_prefixes") or [], set(meta.get("reads") or [])
        for prefix in allowed_prefixes:
            prefixes.setdefault(prefix, set()).add(layer)
        if not name.startswith(tuple(allowed_prefixes)):
            problems.append(f"{where}: {name} does not start with a {layer} prefix ({', '.join(allowed_prefixes)})")
        for dep in node["depends_on"]["nodes"]:
            if dep.startswith("source."):
                source_readers.add(name)
                if "sources" not in reads and name not in KNOWN_SOURCE_READERS:
                    problems.append(f"{where}: a {layer} model reads source() {dep.split('.', 2)[2]}: only staging "
                                    f"models read sources, select from its stg_ model")  # fmt: skip
            elif dep in models:
                dep_layer = (models[dep]["config"].get("meta") or {}).get("layer")
                if dep_layer not in reads:
                    problems.append(f"{where}: a {layer} model reads {models[dep]['name']} ({dep_layer}); "
                                    f"{layer} reads {', '.join(sorted(reads))}")  # fmt: skip
        sources = [d.split(".", 2)[2] for d in node["depends_on"]["nodes"] if d.startswith("source.")]
        if "sources" in reads and len(sources) != 1:  # one stg_ model per source table, joins come later
            problems.append(f"{where}: a {layer} model reads one source table, this one reads {len(sources)}: "
                            f"{', '.join(sources) or 'none'}")  # fmt: skip
        if not node["description"].strip():
            problems.append(f"{where}: {name} has no description (its YAML beside it)")
        if not node["columns"]:
            problems.append(f"{where}: {name} documents no columns")
        for column, spec in node["columns"].items():
            if not (spec.get("description") or "").strip():
                problems.append(f"{node.get('patch_path') or where}: column {name}.{column} has no description")
    for prefix, layers in sorted(prefixes.items()):
        if len(layers) > 1 and prefix not in KNOWN_SHARED_PREFIXES:
            problems.append(
                f"dbt_project.yml: prefix {prefix} is used by {', '.join(sorted(layers))}: one layer a prefix"
            )
    for stale in sorted(KNOWN_SOURCE_READERS - source_readers):
        problems.append(f"{stale} no longer reads source(): remove it from KNOWN_SOURCE_READERS ({__name__})")
    for stale in sorted(KNOWN_SHARED_PREFIXES - {p for p, layers in prefixes.items() if len(layers) > 1}):
        problems.append(f"prefix {stale} belongs to one layer now: remove it from KNOWN_SHARED_PREFIXES ({__name__})")
    for source in manifest["sources"].values():
        where = f"{source['original_file_path']}: source {source['source_name']}.{source['name']}"
        if not source["description"].strip():
            problems.append(f"{where} has no description")
        for column, spec in source["columns"].items():
            if not (spec.get("description") or "").strip():
                problems.append(f"{where}: column {column} has no description")
    return problems


def test_every_model_keeps_the_layer_conventions():
    assert violations(load_manifest()) == []


def test_every_layer_folder_declares_its_conventions():
    manifest = load_manifest()
    layers = {n["fqn"][1] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert layers == {"staging", "core", "marts", "metrics", "platinum"}  # platinum: retail's on-demand views
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model":
            meta = node["config"]["meta"]
            assert meta["model_prefixes"] and meta["reads"], node["original_file_path"]


# --- the check fails on a model that breaks a convention (a copy of the manifest, one model added) ---


def with_model(manifest: dict, like: str, name: str, folder: str | None = None, **changes) -> dict:
    """The manifest plus a model `name`: a copy of model `like`, moved to `folder`, with `changes`."""
    manifest = copy.deepcopy(manifest)
    node = copy.deepcopy(manifest["nodes"][f"model.medallion.{like}"])
    folder = folder or node["fqn"][1]
    path = f"models/{folder}/{name}"
    node.update(name=name, unique_id=f"model.medallion.{name}", fqn=["medallion", folder, name],
                original_file_path=f"{path}.sql", patch_path=f"medallion://{path}.yml")  # fmt: skip
    node.update(changes)
    manifest["nodes"][node["unique_id"]] = node
    return manifest


def add_dependency(manifest: dict, name: str, dep: str) -> dict:
    manifest["nodes"][f"model.medallion.{name}"]["depends_on"]["nodes"].append(dep)
    return manifest


BAD_MODELS = {
    "a new core model reading source()": (
        lambda m: add_dependency(
            with_model(m, "core_users", "core_plans"), "core_plans", "source.medallion.browser_infra.plans"
        ),
        "models/core/core_plans.sql: a core model reads source() browser_infra.plans: only staging models read sources",
    ),
    "a staging model that reads another model": (
        lambda m: add_dependency(
            with_model(m, "stg_browser_infra__plans", "stg_plan_prices"), "stg_plan_prices", "model.medallion.dim_org"
        ),
        "models/staging/stg_plan_prices.sql: a staging model reads dim_org (core); staging reads sources",
    ),
    "a staging model joining two source tables": (
        lambda m: add_dependency(
            with_model(m, "stg_browser_infra__plans", "stg_plan_subs"),
            "stg_plan_subs",
            "source.medallion.browser_infra.subscriptions",
        ),
        "models/staging/stg_plan_subs.sql: a staging model reads one source table, this one reads 2: "
        "browser_infra.plans, ",
    ),
    "a metrics view reading silver": (
        lambda m: add_dependency(with_model(m, "v_mrr", "v_users"), "v_users", "model.medallion.dim_user"),
        "models/metrics/v_users.sql: a metrics model reads dim_user (core); metrics reads marts, metrics",
    ),
    "a mart without a layer prefix": (
        lambda m: with_model(m, "agg_ops_daily", "ops_summary"),
        "models/marts/ops_summary.sql: ops_summary does not start with a marts prefix (agg_)",
    ),
    "a model in a folder that is no layer": (
        lambda m: with_model(m, "dim_org", "dim_team", folder="scratch"),
        "models/scratch/dim_team.sql: meta.layer is 'core' but the model is in models/scratch/",
    ),
    "an undocumented model": (
        lambda m: with_model(m, "dim_user", "dim_team", description=""),
        "models/core/dim_team.sql: dim_team has no description",
    ),
    "an undocumented column": (
        lambda m: with_model(m, "dim_user", "dim_team", columns={"team_id": {"name": "team_id", "description": ""}}),
        "medallion://models/core/dim_team.yml: column dim_team.team_id has no description",
    ),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_the_check_rejects_a_model_that_breaks_a_convention(case):
    mutate, expected = BAD_MODELS[case]
    problems = violations(mutate(load_manifest()))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_the_check_rejects_an_allow_list_entry_no_longer_needed(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "KNOWN_SOURCE_READERS", {"fct_usage"})
    assert violations(load_manifest()) == [
        f"fct_usage no longer reads source(): remove it from KNOWN_SOURCE_READERS ({__name__})"
    ]


def test_the_incremental_core_models_read_bronze_through_staging_only():
    """Only staging reads bronze: the touched keys come from stg_browser_infra__<table>_changes."""
    nodes = load_manifest()["nodes"]
    for name, changes in [("core_sessions", "browser_sessions"), ("fct_browser_run", "browser_sessions"),
                          ("fct_event", "session_events"), ("fct_usage", "usage_records")]:  # fmt: skip
        deps = nodes[f"model.medallion.{name}"]["depends_on"]["nodes"]
        assert f"model.medallion.stg_browser_infra__{changes}_changes" in deps and not [
            d for d in deps if d.startswith("source.")
        ], name
