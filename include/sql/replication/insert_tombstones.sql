-- Hard deletes: a key whose latest bronze version is live but which the source no longer has
-- gets a tombstone row (primary key + _deleted_at). Silver drops keys whose latest row is one.
insert into {bronze} ({pk_columns}, _cursor, _deleted_at)
select {latest_pk}, now(), now()
from (
    select distinct on ({pk_columns}) {pk_columns}, _deleted_at
    from {bronze}
    order by {pk_columns}, _cursor desc nulls last, _loaded_at desc
) as latest
where latest._deleted_at is null
  and not exists (select 1 from {source_keys} as k where {key_match})
