"""Product and table declarations: the real YAML loads; every kind of mistake is one line naming file:line and table."""

from __future__ import annotations

import re
import textwrap

import pytest

from medallion import config
from medallion.config import ConfigError, load_tables


def write(tmp_path, body: str):
    path = tmp_path / "_x__sources.yml"
    path.write_text(textwrap.dedent(body))
    return path


HEAD = """
version: 2
sources:
  - name: app
    schema: bronze_app
    config:
      freshness: {warn_after: {count: 1, period: hour}, error_after: {count: 3, period: hour}}
      meta:
        replication: {source_conn_id: app_db, source_schema: public, primary_key: [id], cursor: updated_at}
    tables:
"""


def test_the_project_declaration_loads():
    tables = config.tables("browser_infra")
    assert {"plans", "browser_sessions", "session_events", "invoices"} <= set(tables)
    sessions = tables["browser_sessions"]
    assert sessions.mode == "incremental" and sessions.cursor == "updated_at" and sessions.primary_key == ("id",)
    assert sessions.bronze_schema == "bronze_browser_infra" and sessions.reconcile_deletes
    assert tables["plans"].mode == "full" and not tables["plans"].reconcile_deletes
    assert tables["session_events"].freshness.error_after.total_seconds() == 4 * 3600  # table override
    assert config.connection_ids() == {
        "browser_infra_source",
        "product_analytics_source",
        "retail_source",
        "warehouse",
        "smtp_default",
    }


def test_table_overrides_and_defaults(tmp_path):
    path = write(
        tmp_path,
        HEAD
        + """
      - name: a
      - name: b
        config:
          meta: {replication: {mode: full, primary_key: [x, y]}}
          freshness: {warn_after: {count: 2, period: day}}
    """,
    )
    tables = load_tables([path])
    assert tables["a"].source_conn_id == "app_db" and tables["a"].freshness.warn_after.total_seconds() == 3600
    assert tables["b"].mode == "full" and tables["b"].primary_key == ("x", "y")
    assert tables["b"].freshness.warn_after.days == 2 and tables["b"].freshness.error_after is None


@pytest.mark.parametrize(
    ("table_yaml", "message"),
    [
        (
            "      - name: a\n        config: {meta: {replication: {mode: sometimes}}}",
            r":11: table app\.a: mode must be one of incremental, full, got 'sometimes'",
        ),
        (
            "      - name: a\n        config: {meta: {replication: {cursor: null}}}",
            r":11: table app\.a: incremental mode needs a cursor column",
        ),
        (
            "      - name: a\n        config: {meta: {replication: {primary_keys: [id]}}}",
            r":11: table app\.a: unknown replication setting 'primary_keys'",
        ),
        (
            "      - name: a\n        config: {meta: {replication: {primary_key: []}}}",
            r":11: table app\.a: primary_key must be a column name or a non-empty list",
        ),
        (
            "      - name: a\n        config: {freshness: {warn_after: {count: 1, period: fortnight}}}",
            r":11: table app\.a: freshness needs",
        ),
        ("      - name: a\n      - name: a", r":12: table app\.a is already declared at .*:11"),
        (
            "      - name: a\n        config: {meta: {replication: {lookback_minutes: soon}}}",
            r"lookback_minutes must be a number",
        ),
    ],
)
def test_bad_declarations_name_file_line_and_table(tmp_path, table_yaml, message):
    path = write(tmp_path, HEAD + table_yaml + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_tables([path])
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, HEAD + "      - name: a\n        config: {meta: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: invalid YAML"):
        load_tables([path])


def test_unknown_table_lists_what_is_declared():
    with pytest.raises(ConfigError, match=r"unknown table 'sessions' of product browser_infra: declared tables are "
                                          r"api_keys, browser_sessions"):  # fmt: skip
        config.get_table("browser_infra", "sessions")


# --- products: include/products/<product>.yml + models/staging/<product>/_<product>__sources.yml ------

PRODUCT_YML = """
description: A test product.
owner: shop-data
source_conn_id: shop_source
alert_emails: [shop-oncall@example.com]
schedules: {bronze: "*/10 * * * *"}
dbt_jobs:
  silver: {layer: silver, schedule: "*/5 * * * *", after: bronze, select: [tag:shop]}
  gold_daily: {layer: gold, schedule: "0 1 * * *", select: tag:daily}
"""

SOURCES_YML = """
version: 2
sources:
  - name: shop
    config:
      meta: {replication: {source_schema: public, primary_key: [id], cursor: updated_at}}
    tables:
      - name: users
      - name: auth__users
        config: {meta: {replication: {source_schema: auth}}}
"""


@pytest.fixture
def product_dirs(tmp_path, monkeypatch):
    """A products folder and a dbt project folder of our own; returns a writer of the two files."""
    monkeypatch.setattr(config, "PRODUCTS_DIR", tmp_path / "products")
    monkeypatch.setattr(config, "DBT_PROJECT_DIR", tmp_path / "dbt")

    def declare(product: str, product_yml: str = PRODUCT_YML, sources_yml: str | None = SOURCES_YML):
        (tmp_path / "products").mkdir(exist_ok=True)
        path = tmp_path / "products" / f"{product}.yml"
        path.write_text(textwrap.dedent(product_yml))
        if sources_yml is not None:
            folder = tmp_path / "dbt" / "models" / "staging" / product
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"_{product}__sources.yml").write_text(textwrap.dedent(sources_yml))
        return path

    return declare


def test_the_browser_infra_product_loads():
    p = config.product("browser_infra")
    assert (p.owner, p.source_conn_id, p.bronze_schema) == ("browser-infra-data", "browser_infra_source",
                                                            "bronze_browser_infra")  # fmt: skip
    assert p.dbt_pool == "medallion_dbt_browser_infra"
    assert p.schedules["bronze"] == "0 * * * *"
    assert {j.name: (j.layer, j.after) for j in p.dbt_jobs} == {
        "silver": ("silver", "bronze"),
        "gold": ("gold", "silver"),
    }
    assert p.dag_id("bronze") == "bronze_browser_infra" and set(p.tables) == set(config.tables("browser_infra"))
    assert config.product_ids() == sorted(f.stem for f in config.PRODUCTS_DIR.glob("*.yml"))


def test_a_product_loads_with_its_jobs_and_same_named_tables_of_two_schemas(product_dirs):
    """`auth.users` beside `public.users`: bronze names them auth__users and users (table names are
    unique per product only); the product's connection is every table's default."""
    product_dirs("shop")
    p = config.load_product("shop")
    assert p.alert_emails == ("shop-oncall@example.com",) and p.owner == "shop-data"
    assert [(j.name, j.layer, j.schedule, j.after, j.select) for j in p.dbt_jobs] == [
        ("silver", "silver", "*/5 * * * *", "bronze", ("tag:shop",)),
        ("gold_daily", "gold", "0 1 * * *", None, ("tag:daily",)),
    ]
    users, auth_users = p.tables["users"], p.tables["auth__users"]
    assert (users.source_schema, users.source_table, users.qualified) == ("public", "users", "bronze_shop.users")
    assert (auth_users.source_schema, auth_users.source_table, auth_users.qualified) == (
        "auth", "users", "bronze_shop.auth__users")  # fmt: skip
    assert users.source_conn_id == auth_users.source_conn_id == "shop_source"


def test_two_products_may_both_have_a_users_table(product_dirs):
    product_dirs("shop")
    product_dirs("crm", PRODUCT_YML.replace("shop", "crm"), SOURCES_YML.replace("name: shop", "name: crm"))
    shop, crm = config.load_product("shop"), config.load_product("crm")
    assert shop.tables["users"].qualified == "bronze_shop.users" and crm.tables["users"].qualified == "bronze_crm.users"
    assert crm.tables["users"].source_conn_id == "crm_source"


@pytest.mark.parametrize(
    ("product_yml", "sources_yml", "message"),
    [
        (
            PRODUCT_YML.replace("owner: shop-data\n", ""),
            SOURCES_YML,
            r"products/shop\.yml:2: product shop: owner is missing",
        ),
        (PRODUCT_YML + "oncall: [x]\n", SOURCES_YML, r"products/shop\.yml:2: product shop: unknown setting 'oncall'"),
        (
            PRODUCT_YML.replace('{bronze: "*/10 * * * *"}', "{bronze: hourly}"),
            SOURCES_YML,
            r"products/shop\.yml:6: product shop: schedules\.bronze must be a cron expression",
        ),
        (
            PRODUCT_YML.replace("layer: silver,", "layer: platinum,"),
            SOURCES_YML,
            r"products/shop\.yml:8: product shop job silver: layer must be one of silver, gold, got 'platinum'",
        ),
        (
            PRODUCT_YML.replace("after: bronze", "after: bronzed"),
            SOURCES_YML,
            r"products/shop\.yml:8: product shop job silver: after must be bronze or another dbt job",
        ),
        (
            PRODUCT_YML,
            SOURCES_YML.replace("name: shop", "name: app"),
            r"_shop__sources\.yml:4: source 'app' must be named like its product 'shop'",
        ),
        (
            PRODUCT_YML,
            SOURCES_YML.replace("name: shop", "name: shop\n    schema: bronze_app"),
            r"_shop__sources\.yml:4: source shop must live in schema bronze_shop",
        ),
        (PRODUCT_YML, None, r"product shop: no replicated tables declared"),
    ],
)
def test_bad_product_declarations_are_one_line_naming_file_line_and_product(product_dirs, product_yml, sources_yml,
                                                                             message):  # fmt: skip
    product_dirs("shop", product_yml, sources_yml)
    with pytest.raises(ConfigError, match=message) as err:
        config.load_product("shop")
    assert "\n" not in str(err.value)


def test_pools_one_per_product_and_the_module_prints_them(product_dirs):
    import json
    import subprocess
    import sys

    product_dirs("shop")
    product_dirs("crm", PRODUCT_YML, None)  # even a product whose tables are broken gets its pool
    assert {k: v["slots"] for k, v in config.pools().items()} == {"medallion_dbt_crm": 1, "medallion_dbt_shop": 1}
    out = subprocess.run([sys.executable, "-m", "medallion.config", "pools"], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(config.ROOT / "plugins")})  # fmt: skip
    declared = (config.ROOT / "include" / "products").glob("*.yml")  # the real bundle's products
    assert (
        set(json.loads(out.stdout)) == {f"medallion_dbt_{p.stem}" for p in declared} >= {"medallion_dbt_browser_infra"}
    )


def test_product_of_dag():
    assert config.product_of_dag("bronze_browser_infra_reconcile") == "browser_infra"
    assert config.product_of_dag("gold_browser_infra") == "browser_infra"
    assert config.product_of_dag("freshness") is None


# --- gold freshness: declared in the dbt project (model meta), read from the dbt manifest ------


def test_every_mart_declares_gold_freshness_on_a_documented_date_column():
    """From the project's manifest (`make manifest`): the marts folder's default reaches every mart,
    the overrides are per model, and each covered_by column is one the model documents."""
    import json

    from medallion import freshness

    nodes = json.loads(freshness.MANIFEST.read_text())["nodes"]
    marts = {n["name"]: n for n in nodes.values()
             if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")}  # fmt: skip
    slas = {sla.table_name: sla for sla in freshness.gold_slas()}
    assert set(slas) == set(marts) and len(marts) >= 6, "every mart, and only marts, has a gold SLA"
    for name, sla in slas.items():
        assert sla.kind == "gold" and sla.source in ("gold_marts", "gold_product_analytics", "gold_retail")
        assert sla.covered_by in marts[name]["columns"], (
            f"{name}: covered_by {sla.covered_by} is not a documented column"
        )
        assert sla.warn_after < sla.error_after
    assert (slas["agg_daily_sessions"].covered_by, slas["agg_daily_sessions"].covered_grain) == ("session_date", "day")
    assert slas["agg_monthly_revenue"].covered_grain == "month"
    for name in ("agg_growth_daily", "agg_daily_sessions"):  # the SLA is the folder's (the override is covered_by)
        assert re.fullmatch(rf"{config.DBT_PROJECT_DIR / 'dbt_project.yml'}:\d+", slas[name].declared_at)


GOLD_PROJECT = {
    "dbt_project.yml": """
        name: shop
        version: "1.0.0"
        profile: shop
        models:
          shop:
            core:
              +schema: silver_core
            other:
              +schema: analytics
            marts:
              +schema: gold_marts
              +meta:
                covered_by: {column: date_day, grain: day}
                freshness:
                  warn_after: {count: 3, period: hour}
                  error_after: {count: 1, period: day}
        """,
    "profiles.yml": """
        shop:
          target: t
          outputs:
            t: {type: postgres, host: nowhere, port: 5432, user: u, password: p, dbname: d, schema: public, threads: 1}
        """,
    "macros/generate_schema_name.sql": "{% macro generate_schema_name(s, n) %}{{ s or target.schema }}{% endmacro %}",
    "models/core/dim.sql": "select 1 as id",
    "models/core/dim.yml": """
        version: 2
        models:
          - name: dim
            config:
              meta: {freshness: {warn_after: {count: 1, period: hour}}, covered_by: {column: id}}
        """,
    "models/other/odd.sql": "select 1 as id",
    "models/other/odd.yml": """
        version: 2
        models:
          - name: odd
            config:
              meta: {freshness: {warn_after: {count: 1, period: hour}}, covered_by: {column: id}}
        """,
    "models/marts/fct_new.sql": "select current_date as date_day",  # a new mart: no YAML at all
    "models/marts/fct_sessions.sql": "select current_date as session_date",
    "models/marts/fct_sessions.yml": """
        version: 2
        models:
          - name: fct_sessions
            config:
              meta:
                covered_by: {column: session_date, grain: day}
        """,
    "models/marts/fct_events.sql": "select now() as loaded_through",
    "models/marts/fct_events.yml": """
        version: 2
        models:
          - name: fct_events
            config:
              meta:
                covered_by: loaded_through
                freshness: {error_after: {count: 30, period: minute}}
        """,
    "models/marts/fct_scratch.sql": "select 1 as x",
    "models/marts/fct_scratch.yml": """
        version: 2
        models:
          - name: fct_scratch
            config:
              meta: {freshness: null}
        """,
    "models/marts/fct_bad_grain.sql": "select current_date as date_day",
    "models/marts/fct_bad_grain.yml": """
        version: 2
        models:
          - name: fct_bad_grain
            config:
              meta:
                covered_by: {column: date_day, grain: fortnight}
        """,
    "models/marts/fct_bad_sla.sql": "select current_date as date_day",
    "models/marts/fct_bad_sla.yml": """
        version: 2
        models:
          - name: fct_bad_sla
            config:
              meta:
                freshness: {warn_after: {count: 3, period: hours}}
        """,
}


@pytest.fixture(scope="module")
def gold_project(tmp_path_factory):
    """A small dbt project, parsed by the real dbt: its manifest holds dbt's merge of folder and model meta."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path_factory.mktemp("gold_project")
    for name, body in GOLD_PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(body).lstrip())
    dbt = Path(sys.executable).with_name("dbt")
    out = subprocess.run([str(dbt), "parse", "--project-dir", str(root), "--profiles-dir", str(root)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    return root


def manifest_with(root, tmp_path, *models: str):
    """The project's manifest with only some of its models (each bad declaration alone)."""
    import json

    data = json.loads((root / "target" / "manifest.json").read_text())
    data["nodes"] = {k: n for k, n in data["nodes"].items() if n["name"] in models}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_gold_slas_come_from_the_folder_default_and_each_model_overrides_a_key(gold_project, tmp_path):
    from datetime import timedelta

    from medallion import freshness

    manifest = manifest_with(gold_project, tmp_path, "fct_new", "fct_sessions", "fct_events", "fct_scratch")
    slas = {s.table_name: s for s in freshness.gold_slas(manifest, gold_project)}
    assert set(slas) == {"fct_new", "fct_sessions", "fct_events"}, "fct_scratch opted out with freshness: null"
    new, sessions, events = slas["fct_new"], slas["fct_sessions"], slas["fct_events"]
    folder = (timedelta(hours=3), timedelta(days=1))
    assert (new.source, new.covered_by, new.covered_grain, new.warn_after, new.error_after) == (
        "gold_marts",
        "date_day",
        "day",
        *folder,
    ), "a new mart gets the folder's declaration, no code change"
    assert (sessions.covered_by, sessions.covered_grain, sessions.warn_after, sessions.error_after) == (
        "session_date",
        "day",
        *folder,
    ), "overriding covered_by keeps the folder's SLA"
    assert (events.covered_by, events.covered_grain, events.warn_after, events.error_after) == (
        "loaded_through",
        None,
        None,
        timedelta(minutes=30),
    ), "a timestamp column, and a model's own SLA"
    project_yml = gold_project / "dbt_project.yml"
    sla_line = project_yml.read_text().splitlines().index("          warn_after: {count: 3, period: hour}") + 1
    assert new.declared_at == f"{project_yml}:{sla_line}"
    assert events.declared_at == f"{gold_project / 'models/marts/fct_events.yml'}:7"


@pytest.mark.parametrize(("model", "where", "message"), [
    ("fct_bad_grain", "models/marts/fct_bad_grain.yml:6: model fct_bad_grain",
     r"meta.freshness needs meta.covered_by: \{column: <date or timestamp column>, grain: hour\|day\|week\|month\} "
     r"\(what period a row covers\), got \{'column': 'date_day', 'grain': 'fortnight'"),
    ("fct_bad_sla", "models/marts/fct_bad_sla.yml:6: model fct_bad_sla",
     r"freshness needs \{count: N, period: minute\|hour\|day\}, got \{'count': 3, 'period': 'hours'\}"),
    ("odd", "models/other/odd.yml:5: model odd",
     r"meta.freshness is checked for silver and gold models only \(schema silver_\* or gold_\*\), this one builds in "
     r"analytics"),
])  # fmt: skip
def test_bad_gold_declarations_name_file_line_and_model(gold_project, tmp_path, model, where, message):
    from medallion import freshness

    with pytest.raises(ConfigError) as err:
        freshness.gold_slas(manifest_with(gold_project, tmp_path, model), gold_project)
    assert str(err.value).startswith(f"{gold_project / where}: "), str(err.value)
    assert re.search(message, str(err.value)) and "\n" not in str(err.value), str(err.value)


def test_a_silver_model_declaring_freshness_is_a_silver_sla(gold_project, tmp_path):
    from datetime import timedelta

    from medallion import freshness

    manifest = manifest_with(gold_project, tmp_path, "dim", "fct_new")
    assert [(s.kind, s.source, s.table_name, s.covered_by, s.warn_after) for s in freshness.silver_slas(
        manifest, gold_project)] == [("silver", "silver_core", "dim", "id", timedelta(hours=1))]  # fmt: skip
    assert [s.table_name for s in freshness.gold_slas(manifest, gold_project)] == ["fct_new"]


def test_the_projects_silver_facts_declare_freshness_on_their_cursor():
    from medallion import freshness

    slas = {sla.table_name: sla for sla in freshness.silver_slas()}
    assert set(slas) == {"core_sessions", "fct_browser_run", "fct_event", "fct_usage"}
    for sla in slas.values():
        assert (sla.source, sla.covered_by, sla.covered_grain) == ("silver_core", "_cursor", None)
        assert re.fullmatch(rf"{config.DBT_PROJECT_DIR / 'dbt_project.yml'}:\d+", sla.declared_at)


def test_a_missing_manifest_names_it_and_make_manifest(tmp_path):
    from medallion import freshness

    with pytest.raises(ConfigError, match=rf"^dbt manifest not found: {tmp_path}/nope.json; .*`make manifest`"):
        freshness.gold_slas(tmp_path / "nope.json")


# --- cursors, lookback, full mode (issue 12) ---------------------------------------------------


def test_cursor_with_fallbacks_default_lookback_and_full_mode_without_cursor_or_key(tmp_path):
    path = write(
        tmp_path,
        HEAD
        + """
      - name: users
        config: {meta: {replication: {cursor: [updated_at, created_at]}}}
      - name: events
        config: {meta: {replication: {cursor: id, lookback_minutes: 0}}}
      - name: countries
        config: {meta: {replication: {mode: full, primary_key: []}}}
      - name: plans
        config: {meta: {replication: {mode: full, cursor: changed_at}}}
    """,
    )
    tables = load_tables([path])
    users, events, countries, plans = (tables[n] for n in ("users", "events", "countries", "plans"))
    assert (users.cursor, users.cursor_fallback, users.cursor_columns) == (
        "updated_at", ("created_at",), ("updated_at", "created_at")
    )  # fmt: skip
    assert users.lookback.total_seconds() == config.DEFAULT_LOOKBACK_MINUTES * 60 == 15 * 60
    assert events.cursor_columns == ("id",) and events.lookback.total_seconds() == 0
    # full mode does not inherit the source's cursor (the table may not have it) and needs no key
    assert (countries.cursor, countries.cursor_columns, countries.primary_key) == (None, (), ())
    assert plans.cursor == "changed_at"  # declared on the table itself: kept


def test_incremental_mode_still_needs_a_key(tmp_path):
    path = write(tmp_path, HEAD + "      - name: a\n        config: {meta: {replication: {primary_key: []}}}\n")
    with pytest.raises(ConfigError, match=r":11: table app\.a: primary_key must be a column name or a non-empty list"):
        load_tables([path])


def test_a_dbt_job_with_schedule_null_runs_on_demand_only_and_a_forgotten_schedule_is_still_an_error(product_dirs):
    manual = PRODUCT_YML + "  platinum: {layer: gold, schedule: null, select: [tag:ai]}\n"
    product_dirs("shop", manual)
    job = {j.name: j for j in config.load_product("shop").dbt_jobs}["platinum"]
    assert (job.schedule, job.after, job.select) == (None, None, ("tag:ai",))
    from medallion import backfill, transform

    assert transform.schedule(job.schedule) is None  # the DAG: no timetable, manual triggers only
    assert "platinum_shop" not in backfill.dag_order(config.load_product("shop"))  # never backfilled
    product_dirs("shop", PRODUCT_YML + "  platinum: {layer: gold, select: [tag:ai]}\n")
    with pytest.raises(config.ConfigError, match=r"shop\.yml:\d+: product shop job platinum: schedule must be a cron"):
        config.load_product("shop")
    product_dirs("shop", PRODUCT_YML + "  platinum: {layer: gold, schedule: null, after: silver, select: [tag:ai]}\n")
    with pytest.raises(config.ConfigError, match=r"job platinum: a manual-only job \(schedule: null\) cannot run"):
        config.load_product("shop")
