-- The source table's columns, in order: name, type, NOT NULL, and the value rows older than the
-- column have (Postgres 11+ "fast default": set by `add column ... default <non-volatile>`,
-- the one element of attmissingval, as text), so bronze can give its older rows the same value.
select
    a.attname,
    a.atttypid,
    format_type(a.atttypid, a.atttypmod) as type,
    a.attnotnull,
    case when a.atthasmissing then (a.attmissingval::text::text [])[1] end as missing
from pg_attribute as a
inner join pg_class as c on a.attrelid = c.oid
inner join pg_namespace as n on c.relnamespace = n.oid
where
    n.nspname = %(schema)s and c.relname = %(table)s
    and a.attnum > 0 and not a.attisdropped
order by a.attnum
