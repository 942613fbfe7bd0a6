-- Append the staged rows that bronze does not hold yet. A row version is (primary key, _cursor):
-- rows re-read through the lookback window or a re-run interval are already there and skipped,
-- so re-running an interval writes nothing twice. `in_window` (`_cursor >= window_start`, plus
-- `or _cursor is null` for tables whose cursor may be NULL) lets the BRIN index on _cursor limit
-- the probe to the window; `cursor_match` is `=`, or `is not distinct from` when a NULL cursor is
-- a version too (NULL = NULL is not true: such rows would be appended again on every run).
-- `once` is `distinct on (<key>, _cursor)` when the source's key has no unique index: a version
-- the source holds twice (the same row inserted twice) is written once. `batch_id` is the batch's
-- id as a constant: bronze's default for _batch_id would be evaluated for every row.
insert into {bronze} ({columns}, _cursor, _batch_id)
select {once} {columns}, _cursor, {batch_id}
from {stage} as s
where not exists (
    select 1
    from {bronze} as b
    where {pk_match}
      and {cursor_match}
      and b._deleted_at is null
      and {in_window}
)
