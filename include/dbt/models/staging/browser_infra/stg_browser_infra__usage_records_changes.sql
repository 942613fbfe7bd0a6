{#- Every bronze row of usage_records, key and change columns only: macros/latest_version.sql -#}
{{ bronze_changes('browser_infra', 'usage_records') }}
