"""Open psycopg 3 connections from Airflow connections, with one-line errors that name the connection."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import make_conninfo

from medallion.config import ConfigError

# libpq options that may come through a connection's "extra" JSON (sslmode=require for Supabase).
LIBPQ_EXTRAS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options", "target_session_attrs"}
SUPABASE_TRANSACTION_POOLER_PORT = 6543


class ConnectionFailed(RuntimeError):
    """The database behind an Airflow connection could not be reached (worth a retry)."""


def conninfo(conn_id: str) -> str:
    """libpq conninfo for an Airflow connection (AIRFLOW_CONN_* env var, secrets backend or metadata DB)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException and friends
        raise ConfigError(
            f"Airflow connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or add it in the UI "
            f"({type(exc).__name__})"
        ) from None
    if conn.port == SUPABASE_TRANSACTION_POOLER_PORT:
        raise ConfigError(
            f"Airflow connection {conn_id!r} points at port {conn.port}, Supabase's transaction pooler, which keeps "
            f"no session state between statements; use the session pooler (port 5432) or a direct connection"
        )
    extra = {k: v for k, v in (conn.extra_dejson or {}).items() if k in LIBPQ_EXTRAS}
    return make_conninfo(
        host=conn.host or "localhost",
        port=conn.port or 5432,
        user=conn.login or None,
        password=conn.password or None,
        dbname=conn.schema or None,
        **extra,
    )


def connect(info: str, name: str, application: str = "medallion") -> psycopg.Connection:
    """Connect with settings that also work through poolers (no server-side prepared statements)."""
    params = psycopg.conninfo.conninfo_to_dict(info)
    params.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(**params, application_name=application, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        where = f"{params.get('host', '')}:{params.get('port', 5432)}/{params.get('dbname', '')}"
        reason = (str(exc).strip().splitlines() or ["connection failed"])[-1]
        raise ConnectionFailed(f"cannot connect to {name} ({where}): {reason}") from None


def connect_airflow(conn_id: str, application: str = "medallion") -> psycopg.Connection:
    return connect(conninfo(conn_id), f"connection {conn_id!r}", application)
