# Airflow image of the medallion DAG bundle: Airflow 3.3.2 + requirements-image.lock + the bundle itself
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

# Every package comes from requirements-image.lock (`make lock`: requirements-image.txt, i.e.
# requirements.txt plus the CeleryExecutor's celery provider and redis client, resolved for Python
# 3.11 with the versions the tests run). --no-deps: nothing is resolved at build time, every package
# the bundle needs is installed at its locked version. (Providers that only the base image ships are
# not in the lock, and their requirements are not checked against it.)
COPY --chown=airflow:root requirements-image.lock /tmp/medallion-requirements.lock
RUN pip install --no-cache-dir --no-deps \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/medallion-requirements.lock

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
