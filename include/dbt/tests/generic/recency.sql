{#
    Fails when the newest `column_name` is older than the reference time minus `max_lag`
    (a Postgres interval, e.g. '2 days'), or when the model is empty.
    The reference time is, first that applies:
      - the run's interval_end (macro interval_var): a scheduled or backfill run must have data up to its interval's end;
      - the newest `reference_column` (default _cursor) of `reference_relation`, e.g. its bronze
        source, among rows matching `reference_where` (e.g. "_deleted_at is null": tombstones are
        stamped with the wall clock): silver must keep up with what replication has loaded;
      - now().
#}
{% test recency(model, column_name, max_lag, reference_relation=none, reference_column='_cursor',
               reference_where=none) %}

    {%- set interval_end = interval_var('interval_end') -%}
    {%- if interval_end -%}
        {%- set reference = "'" ~ interval_end ~ "'::timestamptz" -%}
    {%- elif reference_relation is not none -%}
        {%- set reference = "(select max(" ~ reference_column ~ ") from " ~ reference_relation
            ~ ((" where " ~ reference_where) if reference_where else "") ~ ")" -%}
    {%- else -%}
        {%- set reference = "now()" -%}
    {%- endif -%}

    select
        max({{ column_name }}) as newest,
        {{ reference }} as reference_time
    from {{ model }}
    having max({{ column_name }}) is null
        or max({{ column_name }}) < {{ reference }} - interval '{{ max_lag }}'

{% endtest %}
