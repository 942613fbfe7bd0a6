{#- Every bronze row of session_events, key and change columns only: macros/latest_version.sql -#}
{{ bronze_changes('browser_infra', 'session_events') }}
