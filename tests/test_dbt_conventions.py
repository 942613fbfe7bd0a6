"""The dbt project keeps its layer conventions: names, what each layer reads, docs (from the manifest).

The conventions are written in include/dbt/dbt_project.yml, in each layer folder's meta (`layer`,
`model_prefixes`, `reads`); this test reads them back from `make manifest`'s manifest.json, so a new
model that breaks one fails CI with one line naming its file. Known exceptions are listed below, in
one place: a new violation fails, and so does an exception that is no longer needed.
"""

import copy
import json
import re
import sys

import pytest

from medallion import config, transform

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


# --- sources: every column of every replicated table is declared and described ------------------
# The dbt docs (Browse → dbt Docs in the Airflow UI) show a source's columns from its
# _<product>__sources.yml; the warehouse's catalog lists the bronze table's real columns. A column
# the YAML does not declare shows up undescribed, so a new product (or a new source column) must
# declare and describe each one: the source's own (its DDL in include/sql/source/<product>/) and the
# ones bronze adds (medallion.replication.METADATA_COLUMNS).

_CREATE_TABLE = re.compile(r"create\s+table\s+(?:if\s+not\s+exists\s+)?([\w.\"]+)\s*\(", re.IGNORECASE)
_ADD_COLUMN = re.compile(
    r"alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?([\w.\"]+)\s+add\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?(\w+)",
    re.IGNORECASE,
)
_NOT_A_COLUMN = {"constraint", "primary", "unique", "check", "foreign", "exclude", "like"}


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL))


def ddl_columns(product: str) -> dict[str, list[str]]:
    """`schema.table` -> its columns, in order, from the source DDL of `product` (create table / add column)."""
    tables: dict[str, list[str]] = {}
    for path in sorted((config.SQL_DIR / "source" / product).glob("*.sql")):
        sql = _strip_comments(path.read_text())
        for match in _CREATE_TABLE.finditer(sql):
            depth, i = 1, match.end()
            while depth:  # the table's body: up to the parenthesis closing `create table (`
                depth += {"(": 1, ")": -1}.get(sql[i], 0)
                i += 1
            elements, depth, current = [], 0, ""
            for ch in sql[match.end() : i - 1]:  # split at top-level commas (not inside check (...))
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if ch == "," and depth == 0:
                    elements.append(current)
                    current = ""
                else:
                    current += ch
            elements.append(current)
            names = [e.split()[0].strip('"') for e in elements if e.strip()]
            tables[match.group(1).replace('"', "").lower()] = [n for n in names if n.lower() not in _NOT_A_COLUMN]
        for match in _ADD_COLUMN.finditer(sql):
            tables.setdefault(match.group(1).replace('"', "").lower(), []).append(match.group(2))
    return tables


def source_column_problems(manifest: dict) -> list[str]:
    """Every replicated table's column that its source YAML does not declare, or declares but lacks."""
    from medallion.replication import METADATA_COLUMNS

    problems, ddl = [], {}
    for spec in config.all_tables():
        source = manifest["sources"].get(f"source.{transform.PROJECT_NAME}.{spec.source}.{spec.name}")
        if source is None:
            problems.append(f"{spec.declared_at}: {spec.source}.{spec.name} is not a dbt source (run `make manifest`)")
            continue
        where = f"{source['original_file_path']}: source {spec.source}.{spec.name}"
        if spec.source not in ddl:
            ddl[spec.source] = ddl_columns(spec.source)
        source_columns = ddl[spec.source].get(f"{spec.source_schema}.{spec.source_table}".lower())
        if source_columns is None:
            problems.append(f"{where}: no `create table {spec.source_schema}.{spec.source_table}` in "
                            f"include/sql/source/{spec.source}/*.sql to check its columns against")  # fmt: skip
            continue
        expected = [*source_columns, *METADATA_COLUMNS]
        declared = list(source["columns"])
        for column in expected:
            if column not in declared:
                problems.append(
                    f"{where}: column {column} is not declared (add it with a description under `columns:`)"
                )
        for column in declared:
            if column not in expected:
                problems.append(f"{where}: declares column {column}, which the source table does not have")
    return problems


def test_every_source_column_is_declared_and_described():
    manifest = load_manifest()
    assert source_column_problems(manifest) == []
    assert [p for p in violations(manifest) if ": source " in p] == []  # each declared one has a description
    described = [c for s in manifest["sources"].values() for c in s["columns"].values() if c["description"].strip()]
    assert len(described) >= 200, len(described)  # 145 source columns (107 + 38) + 4 bronze ones x 15 tables
    cursor = manifest["sources"]["source.medallion.browser_infra.plans"]["columns"]["_cursor"]["description"]
    assert "latest version" in cursor, "doc() blocks (models/staging/_bronze.md) are rendered into the docs"


def test_the_source_check_rejects_an_undeclared_a_misspelt_and_an_undescribed_column():
    manifest = copy.deepcopy(load_manifest())
    columns = manifest["sources"]["source.medallion.browser_infra.invoices"]["columns"]
    where = "models/staging/browser_infra/_browser_infra__sources.yml: source browser_infra.invoices"
    columns["paid_on"] = columns.pop("paid_at")
    assert source_column_problems(manifest) == [
        f"{where}: column paid_at is not declared (add it with a description under `columns:`)",
        f"{where}: declares column paid_on, which the source table does not have",
    ]
    columns["paid_on"]["description"] = " "
    assert [p for p in violations(manifest) if ": source " in p] == [f"{where}: column paid_on has no description"]


def test_the_source_ddl_reader_finds_every_column():
    """The reader of include/sql/source: check constraints, composite keys and comments are not columns."""
    tables = ddl_columns("browser_infra")
    assert tables["public.subscriptions"] == [
        "id", "organization_id", "plan_id", "status", "billing_interval", "started_at", "current_period_start",
        "current_period_end", "canceled_at", "created_at", "updated_at",
    ]  # fmt: skip
    assert tables["public.organization_members"][-1] == "deleted_at"  # before `unique (organization_id, user_id)`
    assert len(tables) == 11 and sum(map(len, tables.values())) == 107


# --- secrets: the docs (and Cosmos' rendered SQL in the UI) show every model's compiled SQL -------
# A model that read a secret through env_var() would publish it there. Only the connection profile
# (profiles.yml: never compiled into a model, not part of the docs) reads secrets; the one macro
# reading the environment reads the run's interval (MEDALLION_INTERVAL_*, see medallion.transform).
ENV_VAR_READERS = {"profiles.yml", "macros/incremental_interval.sql"}


def env_var_readers(project_dir) -> set[str]:
    skip = ("target/", "logs/", "dbt_packages/")
    return {
        str(p.relative_to(project_dir))
        for p in project_dir.rglob("*")
        if p.suffix in (".sql", ".yml", ".yaml", ".md")
        and not str(p.relative_to(project_dir)).startswith(skip)
        and "env_var(" in p.read_text()
    }


def test_no_model_reads_a_secret_from_the_environment(tmp_path):
    assert env_var_readers(config.DBT_PROJECT_DIR) == ENV_VAR_READERS
    macro = (config.DBT_PROJECT_DIR / "macros" / "incremental_interval.sql").read_text()
    assert re.findall(r"env_var\(([^,]+),", macro) == ["'MEDALLION_' ~ name | upper"]
    # the check sees a new one
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "leak.sql").write_text("select '{{ env_var(\"WAREHOUSE_PASSWORD\") }}' as oops")
    assert env_var_readers(tmp_path) == {"models/leak.sql"}
