-- Replication's ops objects (schema ops), after 001_ops.sql. Idempotent: applied by
-- medallion.warehouse.migrate.

-- Integer cursors (identity / bigserial ids of append-only tables): the id range a batch read,
-- [window_start_id, window_end_id). window_start/window_end keep the run's time window.
alter table ops.replication_batches add column if not exists window_start_id bigint;
alter table ops.replication_batches add column if not exists window_end_id bigint;

-- Change a column's type while views depend on it (silver's staging views, views on those):
-- Postgres refuses `alter column ... type` under a view, so in one transaction every dependent
-- view (recursively) is saved with its options, owner, grants and comments, dropped, the column
-- altered (`using column::new_type`), and the views recreated in dependency order. Readers wait
-- on the locks and then see the new definitions; nothing is ever missing. The bronze load calls
-- it to widen columns; on-call runs it for a drift the load cannot follow:
--     select ops.alter_column_type('bronze_browser_infra.browser_sessions', 'keep_alive', 'text');
-- Returns the number of views recreated. Materialized views are refused (recreating one means
-- recomputing it): the error names them.
create or replace function ops.alter_column_type(target regclass, col name, new_type text)
returns integer
language plpgsql
as $$
declare
    v record;
    drops text[] := '{}';
    recreate text[] := '{}';
    stmt text;
begin
    for v in
        with recursive deps (view_oid, depth) as (
            select r.ev_class, 1
            from pg_depend as d
            inner join pg_rewrite as r on d.objid = r.oid
            where
                d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
                and d.refobjid = target and r.ev_class <> target
            union all
            select r.ev_class, deps.depth + 1
            from deps
            inner join pg_depend as d
                on d.refobjid = deps.view_oid and d.refclassid = 'pg_class'::regclass
                and d.classid = 'pg_rewrite'::regclass
            inner join pg_rewrite as r on d.objid = r.oid
            where r.ev_class <> deps.view_oid
        )

        select
            c.oid, c.relkind, c.reloptions, c.relacl, c.relowner,
            format('%I.%I', n.nspname, c.relname) as name,
            max(deps.depth) as depth
        from deps
        inner join pg_class as c on deps.view_oid = c.oid
        inner join pg_namespace as n on c.relnamespace = n.oid
        group by c.oid, n.nspname
        order by max(deps.depth)
    loop
        if v.relkind <> 'v' then
            raise exception 'materialized view % depends on %.%: drop it, run ops.alter_column_type again, recreate it',
                v.name, target, col;
        end if;
        drops := drops || v.name;
        recreate := recreate || format(
            'create view %s (%s)%s as %s',
            v.name,
            (select string_agg(quote_ident(a.attname), ', ' order by a.attnum)
             from pg_attribute as a where a.attrelid = v.oid and a.attnum > 0 and not a.attisdropped),
            case when v.reloptions is not null then format(' with (%s)', array_to_string(v.reloptions, ', ')) else '' end,
            regexp_replace(pg_get_viewdef(v.oid), ';\s*$', '')
        );
        recreate := recreate || format('alter view %s owner to %I', v.name, pg_get_userbyid(v.relowner));
        recreate := recreate || coalesce((
            select array_agg(format(
                'grant %s on %s to %s%s',
                g.privilege_type, v.name,
                case when g.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(g.grantee)) end,
                case when g.is_grantable then ' with grant option' else '' end
            ))
            from aclexplode(v.relacl) as g
            where g.grantee <> v.relowner
        ), '{}');
        recreate := recreate || coalesce((
            select array_agg(format('comment on view %s is %L', v.name, obj_description(v.oid, 'pg_class')))
            where obj_description(v.oid, 'pg_class') is not null
        ), '{}');
        recreate := recreate || coalesce((
            select array_agg(format('comment on column %s.%I is %L', v.name, a.attname, col_description(v.oid, a.attnum)))
            from pg_attribute as a
            where a.attrelid = v.oid and a.attnum > 0 and col_description(v.oid, a.attnum) is not null
        ), '{}');
    end loop;
    if cardinality(drops) > 0 then
        execute 'drop view ' || array_to_string(drops, ', ');
    end if;
    execute format('alter table %s alter column %I type %s using %I::%s', target, col, new_type, col, new_type);
    foreach stmt in array recreate loop
        execute stmt;
    end loop;
    return cardinality(drops);
end
$$;
