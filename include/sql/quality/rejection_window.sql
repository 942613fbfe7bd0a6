-- Payloads received in [window_start, window_end) and how many a validated silver model rejected,
-- with the most frequent reasons. {checks} is the checks model (status, reasons, received_at).
select
    count(*) as landed,
    count(*) filter (where status = 'quarantined') as rejected,
    coalesce(
        (
            select array_agg(reason_count order by n desc, reason_count)
            from (
                select
                    reason || ' (' || count(*) || ')' as reason_count,
                    count(*) as n
                from {checks} as c, unnest(c.reasons) as reason
                where c.received_at >= %(window_start)s and c.received_at < %(window_end)s
                group by reason
                order by n desc, reason
                limit 5
            ) as top
        ),
        '{{}}'
    ) as top_reasons
from {checks}
where received_at >= %(window_start)s and received_at < %(window_end)s
