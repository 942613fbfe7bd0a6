#!/usr/bin/env bash
# Build-time dbt manifest: `dbt parse` writes <project>/target/manifest.json, which astronomer-cosmos
# reads to render the dbt DAG without parsing the project on every DAG file parse.
#
#   docker/dbt-manifest.sh [PROJECT_DIR]      (default: include/dbt)
#
# Run by the Dockerfile, and by tests/test_docker.py outside Docker. dbt parse needs a profile but
# never connects, so WAREHOUSE_* (read by <project>/profiles.yml) get dummy values unless already set.
# A tree without a dbt project (no dbt_project.yml) is skipped, not an error. Honours dbt's own
# DBT_TARGET_PATH / DBT_LOG_PATH, so a test can keep the output out of the tree.
set -euo pipefail

project_dir="${1:-include/dbt}"

if [[ ! -f "${project_dir}/dbt_project.yml" ]]; then
    echo "dbt-manifest: no ${project_dir}/dbt_project.yml, skipping dbt parse"
    exit 0
fi

export WAREHOUSE_HOST="${WAREHOUSE_HOST:-build-time-dummy}"
export WAREHOUSE_PORT="${WAREHOUSE_PORT:-5432}"
export WAREHOUSE_USER="${WAREHOUSE_USER:-build-time-dummy}"
export WAREHOUSE_PASSWORD="${WAREHOUSE_PASSWORD:-build-time-dummy}"
export WAREHOUSE_DB="${WAREHOUSE_DB:-build-time-dummy}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false

# Packages are fetched only if the project declares some (dbt parse fails without them).
if [[ -f "${project_dir}/packages.yml" || -f "${project_dir}/dependencies.yml" ]]; then
    dbt deps --profiles-dir "${project_dir}" --project-dir "${project_dir}"
fi
dbt parse --profiles-dir "${project_dir}" --project-dir "${project_dir}"
echo "dbt-manifest: wrote ${DBT_TARGET_PATH:-${project_dir}/target}/manifest.json"
