{#- Every bronze row of browser_sessions, key and change columns only: macros/latest_version.sql -#}
{{ bronze_changes('browser_infra', 'browser_sessions') }}
