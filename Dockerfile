# Airflow image of the medallion DAG bundle: Airflow 3.3.2 + requirements.txt + the bundle itself
# (dags/, plugins/, include/) + a dbt manifest built at image build time. See docs/docker.md.
#
#   docker compose build            (or: docker build -t medallion-airflow .)
#
# Extends the official image the documented way: pip install as the `airflow` user, with
# apache-airflow pinned on the same command line so no requirement can move Airflow itself.
FROM apache/airflow:3.3.2-python3.11

# 50000 is the official image's `airflow` user (AIRFLOW_UID; group 0). Numeric, so a runtime that
# checks runAsNonRoot (Kubernetes) can verify it without the image's /etc/passwd (hadolint DL3066).
USER 50000

# CeleryExecutor (docker-compose.yaml) needs the celery provider and the redis client. The official
# image ships them today; they are named here so the image does not depend on the base image's
# default extras. They belong to this deployment, not to requirements.txt (the local stack runs the
# LocalExecutor and does not need them).
COPY --chown=airflow:root requirements.txt /tmp/medallion-requirements.txt
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/medallion-requirements.txt \
        "apache-airflow-providers-celery>=3.10" \
        "redis>=5.2"

# The bundle. medallion.config resolves include/ as parents[2] of plugins/medallion/config.py,
# so the three folders must stay siblings under AIRFLOW_HOME (/opt/airflow).
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root docker/dbt-manifest.sh /opt/airflow/docker/dbt-manifest.sh

# Airflow puts plugins/ on sys.path itself; PYTHONPATH makes `python -m medallion.<tool>` (the
# source-seed service, `docker compose run`) and dbt/cosmos subprocesses see the package too.
ENV PYTHONPATH=/opt/airflow/plugins

# include/dbt/target/manifest.json for cosmos. Skipped (not failed) while there is no dbt project;
# dbt parse never connects, the script gives profiles.yml dummy WAREHOUSE_* values.
WORKDIR /opt/airflow
RUN bash /opt/airflow/docker/dbt-manifest.sh /opt/airflow/include/dbt
