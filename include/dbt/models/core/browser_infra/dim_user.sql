{#- The user dimension for BI: no e-mail address or name (PII stays in core_users). -#}
with

users as (

    select * from {{ ref('core_users') }}

),

final as (

    select
        -- ids
        user_id,
        primary_organization_id,

        -- attributes
        email_domain,
        primary_role,
        organization_count,
        is_deleted,

        -- dates
        {{ utc_date('created_at') }} as signup_date,
        {{ utc_date('last_sign_in_at') }} as last_sign_in_date,
        last_sign_in_at

    from users

)

select * from final
