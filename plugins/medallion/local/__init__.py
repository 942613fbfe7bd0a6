"""Local tooling, not runtime: the embedded Postgres servers (localpg), the local stack (localstack:
`make demo`, `make airflow`, `make backfill`), a live Airflow for tests (liveairflow), the mail catcher
(mailsink) and the demo generators, one per product (demo/<product>.py).

The Docker image leaves this folder out (.dockerignore); no runtime module imports it
(tests/test_docker.py). The docker-compose demo mounts it into its one-shot `source-seed` service.
"""
