#!/usr/bin/env bash
# Initialises the demo source database (the `source-db` compose service, image postgres:17).
# The postgres image runs this once, on an empty data volume, from /docker-entrypoint-initdb.d.
#
# 1. applies the Supabase-shaped demo migrations, include/sql/source/*.sql then include/sql/source/
#    <product>/*.sql (mounted read-only at /medallion/sql/source), in file-name order, as the database owner;
# 2. gives the `replicator` role (created by 002_replication_role.sql with no password) the password
#    from SOURCE_REPLICATOR_PASSWORD, so Airflow's browser_infra_source connection can log in with
#    scram-sha-256 like it would on real Supabase.
# The data itself is loaded afterwards by the `source-seed` service (python -m medallion.local.demo.<product>).
set -euo pipefail

migrations_dir="${MEDALLION_SOURCE_MIGRATIONS:-/medallion/sql/source}"
psql_opts=(-v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB}")

shopt -s nullglob
# the generic Supabase platform files first, then each product's own folder (name order); compose's
# one demo database holds every product's schema (the local stack gives each product its own database)
migrations=("${migrations_dir}"/*.sql "${migrations_dir}"/*/*.sql)
if [[ ${#migrations[@]} -eq 0 ]]; then
    echo "initdb: no migrations in ${migrations_dir}: is include/sql/source mounted?" >&2
    exit 1
fi
for f in "${migrations[@]}"; do
    echo "initdb: applying ${f}"
    psql "${psql_opts[@]}" --file "${f}"
done

: "${SOURCE_REPLICATOR_PASSWORD:?set SOURCE_REPLICATOR_PASSWORD for the replicator role}"
# psql variables (:'pw') quote the password; they are expanded only in input read from stdin/files.
psql "${psql_opts[@]}" -v pw="${SOURCE_REPLICATOR_PASSWORD}" <<'SQL'
alter role replicator with login password :'pw';
SQL
echo "initdb: source database ready"
