"""Table declarations: the real YAML loads; every kind of mistake is one line naming file:line and table."""

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
    tables = config.tables()
    assert {"plans", "browser_sessions", "session_events", "invoices"} <= set(tables)
    sessions = tables["browser_sessions"]
    assert sessions.mode == "incremental" and sessions.cursor == "updated_at" and sessions.primary_key == ("id",)
    assert sessions.bronze_schema == "bronze_supabase" and sessions.reconcile_deletes
    assert tables["plans"].mode == "full" and not tables["plans"].reconcile_deletes
    assert tables["session_events"].freshness.error_after.total_seconds() == 4 * 3600  # table override
    assert config.connection_ids() == {"supabase_source", "product_analytics_source", "warehouse", "smtp_default"}


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
        ("      - name: a\n      - name: a", r":12: table a is already declared at .*:11"),
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
    with pytest.raises(
        ConfigError, match=r"unknown table 'sessions': declared tables are api_keys, api_logs_raw, browser_sessions"
    ):
        config.get_table("sessions")


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
        assert sla.kind == "gold" and sla.source in ("gold_marts", "gold_product_analytics")
        assert sla.covered_by in marts[name]["columns"], (
            f"{name}: covered_by {sla.covered_by} is not a documented column"
        )
        assert sla.warn_after < sla.error_after
    assert (slas["fct_daily_sessions"].covered_by, slas["fct_daily_sessions"].covered_grain) == ("session_date", "day")
    assert slas["fct_monthly_revenue"].covered_grain == "month"
    for name in ("fct_growth_daily", "fct_daily_sessions"):  # the SLA is the folder's (the override is covered_by)
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
    ("dim", "models/core/dim.yml:5: model dim",
     r"meta.freshness is checked for gold models only \(schema gold_\*\), this one builds in silver_core"),
])  # fmt: skip
def test_bad_gold_declarations_name_file_line_and_model(gold_project, tmp_path, model, where, message):
    from medallion import freshness

    with pytest.raises(ConfigError) as err:
        freshness.gold_slas(manifest_with(gold_project, tmp_path, model), gold_project)
    assert str(err.value).startswith(f"{gold_project / where}: "), str(err.value)
    assert re.search(message, str(err.value)) and "\n" not in str(err.value), str(err.value)


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
