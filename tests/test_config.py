"""Table declarations: the real YAML loads; every kind of mistake is one line naming file:line and table."""

from __future__ import annotations

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
    assert config.connection_ids() == {"supabase_source", "warehouse", "smtp_default"}


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
    with pytest.raises(ConfigError, match=r"unknown table 'sessions': declared tables are api_keys, browser_sessions"):
        config.get_table("sessions")
