-- Reconciliation repair: a tombstone (key columns, _deleted_at) for each key that is live in bronze
-- but gone from the source. It takes the cursor of the key's latest version, whatever the cursor's
-- type, and orders after it on _loaded_at; _deleted_at is when the delete was found (silver picks
-- tombstones up by it).
insert into {bronze} ({pk_columns}, _cursor, _deleted_at)
select
    {key_columns},
    latest._cursor,
    now()
from {keys} as k
inner join lateral (
    select
        b._cursor,
        b._deleted_at
    from {bronze} as b
    where {pk_match}
    order by b._cursor desc nulls last, b._loaded_at desc
    limit 1
) as latest on true
where latest._deleted_at is null
