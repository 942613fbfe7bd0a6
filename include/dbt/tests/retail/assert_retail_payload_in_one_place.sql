-- A landed transaction payload is validated or quarantined, never both (returns the ones in both).
select validated.landing_id
from {{ ref('silver_validated_transactions') }} as validated
inner join {{ ref('silver_quarantine') }} as quarantined
    on quarantined.landing_table = 'transactions' and validated.landing_id = quarantined.landing_id
