{#- One row per landed products payload (the latest bronze version of each landing row), untouched: the
    JSONB is judged in silver (models/core/retail), where a failing payload is quarantined. -#}

{{ retail_landing('bronze_products') }}
