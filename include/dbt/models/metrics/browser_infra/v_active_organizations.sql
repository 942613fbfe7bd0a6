{#-
    Active organizations per day. An organization is active on a day when it started at least
    one browser session that day (1d); 7d / 30d: at least one in the trailing 7 / 30 days, the
    day included. The base is the organizations signed up by that day.
-#}
with

spine as (

    select * from {{ ref('metric_spine_daily') }}

),

final as (

    select
        -- grain
        date_day,

        -- counts
        count(*) as signed_up_organizations,
        count(*) filter (where is_active_1d) as active_organizations_1d,
        count(*) filter (where is_active_7d) as active_organizations_7d,
        count(*) filter (where is_active_30d) as active_organizations_30d,

        -- share of signed-up organizations active in the trailing 30 days
        {{ ratio('count(*) filter (where is_active_30d)', 'count(*)') }} as active_share_30d

    from spine
    group by date_day

)

select * from final
