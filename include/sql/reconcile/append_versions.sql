-- Reconciliation repair: append the source's current rows of missing and stale keys as new versions.
-- A repaired version must become its key's latest: it keeps its own cursor unless bronze's latest
-- version of the key (or tombstone) orders after it (the source's cursor went backwards or to NULL,
-- or the key was tombstoned and is back); then it takes that cursor and wins on _loaded_at.
insert into {bronze} ({columns}, _cursor)
select
    {stage_columns},
    case
        when latest._cursor is not null and (s._cursor is null or latest._cursor > s._cursor)
            then latest._cursor
        else s._cursor
    end
from {stage} as s
left join lateral (
    select b._cursor
    from {bronze} as b
    where {pk_match}
    order by b._cursor desc nulls last, b._loaded_at desc
    limit 1
) as latest on true
