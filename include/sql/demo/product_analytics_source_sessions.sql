-- The number of sessions the source's events make, by the document's rules written again on the
-- source (one delivery per event id; valid: event_type and user_id set; a new session after 30
-- minutes without an event). `make demo` checks silver's user_sessions against it.
with valid as (
    select distinct on (id) id, user_id, created_at
    from analytics.events_raw
    where event_type is not null and user_id is not null
    order by id, ingested_at desc
),

marked as (
    select
        case
            when created_at - lag(created_at) over (partition by user_id order by created_at, id)
                <= interval '30 minutes' then 0
            else 1
        end as is_start
    from valid
)

select coalesce(sum(is_start), 0) as sessions
from marked;
