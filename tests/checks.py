"""Assertions on real data: bronze's latest live rows must equal the source, row for row."""

from __future__ import annotations

import psycopg
from psycopg import sql

from medallion.config import TableSpec
from medallion.replication import source_columns


def source_fingerprint(src: psycopg.Connection, spec: TableSpec) -> tuple[int, int]:
    """(row count, order-independent checksum of every column) of the source table."""
    cols = [c.name for c in source_columns(src, spec)]
    return _fingerprint(
        src,
        sql.SQL("select {} from {}").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(spec.source_schema, spec.name)
        ),
    )


def bronze_fingerprint(wh: psycopg.Connection, src: psycopg.Connection, spec: TableSpec) -> tuple[int, int]:
    """The same over bronze's latest live version of each key."""
    cols = [c.name for c in source_columns(src, spec)]
    pk = sql.SQL(", ").join(map(sql.Identifier, spec.primary_key))
    latest = sql.SQL(
        "select {cols} from (select distinct on ({pk}) * from {bronze} "
        "order by {pk}, _cursor desc nulls last, _loaded_at desc) t where _deleted_at is null"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, cols)), pk=pk, bronze=sql.Identifier(spec.bronze_schema, spec.name)
    )
    return _fingerprint(wh, latest)


def _fingerprint(conn: psycopg.Connection, query: sql.Composable) -> tuple[int, int]:
    row = conn.execute(
        sql.SQL(
            "select count(*), coalesce(sum(('x' || left(md5(t::text), 12))::bit(48)::bigint), 0) from ({}) t"
        ).format(query)
    ).fetchone()
    conn.rollback()
    return int(row[0]), int(row[1])


def bronze_rows(wh: psycopg.Connection, spec: TableSpec) -> int:
    n = wh.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(spec.bronze_schema, spec.name))).fetchone()[
        0
    ]
    wh.rollback()
    return n
