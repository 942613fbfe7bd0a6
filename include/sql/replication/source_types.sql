-- Every type the columns use, with what they are built on (a domain's base type, an array's
-- element type, recursively) and the extension that owns each, to map them to warehouse types.
with recursive used (oid) as (
    select unnest(%(oids)s::oid [])
    union
    select next_type.oid
    from used
    inner join pg_type as t on used.oid = t.oid
    cross join lateral (values (t.typbasetype), (t.typelem)) as next_type (oid)
    where next_type.oid <> 0
)

select
    t.oid,
    format_type(t.oid, null) as name,
    n.nspname as schema,
    t.typtype as kind,
    t.typbasetype as base,
    format_type(t.typbasetype, t.typtypmod) as base_name,
    t.typelem as element,
    t.typcategory = 'A' and t.typelem <> 0 and t.typlen = -1 as is_array,
    e.extname as extension
from used
inner join pg_type as t on used.oid = t.oid
inner join pg_namespace as n on t.typnamespace = n.oid
left join pg_depend as d
    on d.classid = 'pg_type'::regclass and t.oid = d.objid and d.deptype = 'e'
left join pg_extension as e on d.refobjid = e.oid
