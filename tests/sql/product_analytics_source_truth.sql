-- The answers to tests/sql/product_analytics_examples.sql, computed with plain SQL on the SOURCE
-- database (analytics.*_raw), independently of the dbt models: the same rules written again from
-- the product document (dedup by event id, 30-minute sessions, validity and duplicate rules), so a
-- model that drifts from them fails the acceptance test. Every query runs after `prelude`.

-- name: prelude
create temp table t_events on commit drop as
select distinct on (id) id, event_type, user_id, session_id, created_at
from analytics.events_raw
order by id, ingested_at desc;

create temp table t_sessions on commit drop as
with valid as (
    select * from t_events where event_type is not null and user_id is not null
),
marked as (
    select *,
        case when created_at - lag(created_at) over (partition by user_id order by created_at, id)
                  <= interval '30 minutes' then 0 else 1 end as is_start
    from valid
),
numbered as (
    select *, sum(is_start) over (partition by user_id order by created_at, id rows unbounded preceding) as n
    from marked
)
select user_id, min(created_at) as started_at, max(created_at) as ended_at, count(*) as event_count,
       extract(epoch from max(created_at) - min(created_at))::numeric(12, 3) as duration_seconds
from numbered
group by user_id, n;

create temp table t_charges on commit drop as
select *
from (
    select t.*,
           row_number() over (partition by external_id order by created_at, ingested_at, id) as delivery
    from analytics.transactions_raw t
) d
where delivery = 1 and amount > 0 and nullif(upper(trim(currency)), '') is not null;

create temp table t_api on commit drop as
select created_at, response_time_ms,
       (status_code >= 500 or status_code = 0) as is_server_error,
       (upper(trim(method)) in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')
        and nullif(split_part(endpoint, '?', 1), '') is not null
        and status_code between 100 and 599 and response_time_ms >= 0) is true as is_valid
from analytics.api_logs_raw;

-- name: daily_active_users
with firsts as (
    select user_id, min((started_at at time zone 'UTC')::date) as first_day from t_sessions group by user_id
),
per_day as (
    select (s.started_at at time zone 'UTC')::date as day,
           count(distinct s.user_id) as active,
           count(distinct s.user_id) filter (where f.first_day = (s.started_at at time zone 'UTC')::date) as new
    from t_sessions s join firsts f using (user_id)
    group by 1
),
days as (
    select (created_at at time zone 'UTC')::date as day from t_events
    union select (created_at at time zone 'UTC')::date from t_charges
    union select (created_at at time zone 'UTC')::date from analytics.api_logs_raw
    union select day from per_day
)
select days.day, coalesce(active, 0), coalesce(new, 0), coalesce(active - new, 0),
       (coalesce(new, 0)::decimal / nullif(coalesce(active, 0), 0) * 100)::decimal(5, 2)
from days left join per_day using (day)
where days.day >= current_date - 7
order by days.day desc;

-- name: retention_by_cohort
with activity as (
    select distinct user_id, date_trunc('month', (started_at at time zone 'UTC')::date)::date as month
    from t_sessions
),
cohort as (select user_id, min(month) as cohort_month from activity group by user_id),
counts as (
    select c.cohort_month,
           count(*) filter (where a.month = c.cohort_month) as m0,
           count(*) filter (where a.month = (c.cohort_month + interval '1 month')::date) as m1,
           count(*) filter (where a.month = (c.cohort_month + interval '3 months')::date) as m3
    from activity a join cohort c using (user_id)
    group by c.cohort_month
),
revenue as (
    select c.cohort_month, sum(t.amount) as revenue
    from t_charges t join cohort c using (user_id)
    where t.status = 'succeeded'
    group by c.cohort_month
),
last_month as (select max(month) as month from activity)
select counts.cohort_month, m0, m1,
       case when counts.cohort_month + interval '1 month' <= last_month.month
            then round(m1::numeric / m0, 4) end * 100,
       case when counts.cohort_month + interval '3 months' <= last_month.month
            then round(m3::numeric / m0, 4) end * 100,
       round(coalesce(revenue.revenue, 0) / m0, 2)
from counts cross join last_month left join revenue using (cohort_month)
order by counts.cohort_month desc
limit 12;

-- name: revenue_trends
with per_day as (
    select (created_at at time zone 'UTC')::date as day,
           coalesce(sum(amount) filter (where status = 'succeeded'), 0) as revenue,
           count(*) as total,
           round(avg(amount) filter (where status = 'succeeded'), 2) as avg_value,
           count(*) filter (where status = 'succeeded') as succeeded,
           count(*) filter (where status = 'failed') as failed
    from t_charges
    group by 1
),
days as (select distinct (created_at at time zone 'UTC')::date as day from analytics.transactions_raw)
select days.day, coalesce(revenue, 0), coalesce(total, 0), avg_value, coalesce(succeeded, 0),
       (coalesce(failed, 0)::decimal / nullif(coalesce(total, 0), 0) * 100)::decimal(5, 2)
from days left join per_day using (day)
where days.day >= current_date - 30
order by days.day desc;

-- name: kpi_dashboard
with ends as (
    select date_trunc('hour', max(created_at)) + interval '1 hour' as t from t_events
),
periods as (
    select p.name, ends.t - p.len as s, ends.t as e, ends.t - 2 * p.len as ps
    from ends, (values ('24h', interval '1 day'), ('7d', interval '7 days'), ('30d', interval '30 days')) p (name, len)
),
windows as (
    select name, true as cur, s as ws, e as we from periods
    union all select name, false, ps, s from periods
),
m as (
    select w.name, w.cur,
        (select count(distinct user_id) from t_events
          where event_type is not null and created_at >= w.ws and created_at < w.we)::numeric as active_users,
        (select count(*) from t_events
          where event_type is not null and created_at >= w.ws and created_at < w.we)::numeric as events,
        (select count(*) from t_sessions where started_at >= w.ws and started_at < w.we)::numeric as sessions,
        (select round(avg(duration_seconds), 2) from t_sessions
          where started_at >= w.ws and started_at < w.we) as avg_session_duration,
        (select coalesce(sum(amount), 0) from t_charges
          where status = 'succeeded' and created_at >= w.ws and created_at < w.we) as revenue,
        (select count(*) from t_charges
          where status = 'succeeded' and created_at >= w.ws and created_at < w.we)::numeric as transactions,
        (select round(100.0 * count(*) filter (where is_server_error) / nullif(count(*), 0), 2) from t_api
          where created_at >= w.ws and created_at < w.we) as api_error_rate,
        (select round(avg(response_time_ms) filter (where is_valid), 2) from t_api
          where created_at >= w.ws and created_at < w.we) as avg_api_response_time
    from windows w
),
long as (
    select name, cur, metric, unit, value
    from m, lateral (values
        ('active_users', 'users', active_users), ('events', 'events', events), ('sessions', 'sessions', sessions),
        ('avg_session_duration', 'seconds', avg_session_duration), ('revenue', 'USD', revenue),
        ('transactions', 'transactions', transactions), ('api_error_rate', 'percent', api_error_rate),
        ('avg_api_response_time', 'ms', avg_api_response_time)) v (metric, unit, value)
)
select c.metric, c.value, c.unit, c.name,
       round(100 * (c.value - p.value) / nullif(p.value, 0), 2),
       case when p.value is null or p.value = 0 or c.value is null then 'flat'
            when c.value > p.value * 1.01 then 'up'
            when c.value < p.value * 0.99 then 'down'
            else 'flat' end
from long c join long p on p.metric = c.metric and p.name = c.name and not p.cur
where c.cur
order by c.metric, c.name;

-- name: top_events_by_user
select user_id, event_type, count(*), max(created_at)
from t_events
where created_at >= current_date - 7 and event_type is not null
group by user_id, event_type
order by count(*) desc;

-- name: session_duration_distribution
select case when duration_seconds < 30 then '0-30s' when duration_seconds < 60 then '30-60s'
            when duration_seconds < 300 then '1-5min' when duration_seconds < 900 then '5-15min'
            else '15min+' end as bucket,
       count(*), avg(event_count)
from t_sessions
where started_at >= current_date - 7
group by bucket
order by min(duration_seconds);
