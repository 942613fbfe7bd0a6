{#- One row per landed transactions payload (the latest bronze version of each landing row), untouched: the
    JSONB is judged in silver (models/core/retail), where a failing payload is quarantined. -#}

{{ retail_landing('bronze_transactions') }}
