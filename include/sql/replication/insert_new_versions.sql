-- Append the staged rows that bronze does not hold yet. A row version is (primary key, _cursor):
-- rows re-read through the lookback window or a re-run interval are already there and skipped,
-- so re-running an interval writes nothing twice. `_cursor >= window_start` lets the BRIN index
-- on _cursor limit the probe to the window.
insert into {bronze} ({columns}, _cursor)
select {columns}, _cursor
from {stage} as s
where not exists (
    select 1
    from {bronze} as b
    where {pk_match}
      and b._cursor = s._cursor
      and b._deleted_at is null
      and b._cursor >= {window_start}
)
