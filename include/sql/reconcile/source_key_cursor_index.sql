-- An index of the source table that holds every key column and every cursor column (as key or
-- `include` columns; no predicate, no expression): with it, a `versions` check of a NOT NULL
-- cursor reads that index alone (an index-only scan) instead of every row of the table.
-- The first such index by name, or no row.
select i.indexrelid::regclass::text as index_name
from pg_index as i
where
    i.indrelid = %(table)s::regclass
    and i.indpred is null
    and i.indexprs is null
    and (
        select array_agg(a.attname::text)
        from pg_attribute as a
        where a.attrelid = i.indrelid and a.attnum = any(i.indkey::int2 [])
    ) @> %(columns)s::text []
order by 1
limit 1
