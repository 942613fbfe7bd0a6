-- Is the declared primary key unique in the source table: a unique index (no predicate, no
-- expression; a primary key or unique constraint has one) whose key columns are all declared key
-- columns. Without one the source may hold a key twice (an append-only log where a retried
-- delivery repeats the client's id): loads then write each (key, cursor) version once, and the
-- reconciliation compares each key's latest row, as bronze orders them.
select exists (
    select
    from pg_index as i
    where
        i.indrelid = %(table)s::regclass
        and i.indisunique
        and i.indpred is null
        and i.indexprs is null
        and (
            select bool_and(a.attname = any(%(key)s::text []))
            from pg_attribute as a
            where
                a.attrelid = i.indrelid
                and a.attnum = any((i.indkey::int2 [])[0:i.indnkeyatts - 1])
        )
)
