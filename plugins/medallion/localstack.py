"""The local stack without Docker: embedded Postgres servers, Airflow configuration, the demo.

    python -m medallion.localstack up        # start the source and warehouse servers, print env
    python -m medallion.localstack demo      # seed, migrate Airflow, run the pipeline, print results
    python -m medallion.localstack airflow   # run Airflow (api-server, scheduler, ...) on the same DBs
    python -m medallion.localstack down      # stop the servers (data is kept in .local/)

Two servers stand in for the two real ones: `source` plays Supabase (database `source`, schema
public, RLS on, read through the `replicator` role), `warehouse` holds the warehouse database and
Airflow's metadata database. Everything lives under .local/ (override with MEDALLION_LOCAL_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from medallion import demo_source
from medallion.config import POOLS_FILE, ROOT
from medallion.localpg import LocalPostgres

LOCAL_DIR = Path(os.environ.get("MEDALLION_LOCAL_DIR", ROOT / ".local"))
SOURCE_PORT = int(os.environ.get("MEDALLION_SOURCE_PORT", "54320"))
WAREHOUSE_PORT = int(os.environ.get("MEDALLION_WAREHOUSE_PORT", "54321"))
SMTP_PORT = int(os.environ.get("MEDALLION_SMTP_PORT", "1025"))


class Stack:
    """The two local servers and the environment that points Airflow and dbt at them."""

    def __init__(
        self,
        base: Path = LOCAL_DIR,
        source_port: int = SOURCE_PORT,
        warehouse_port: int = WAREHOUSE_PORT,
        smtp_port: int = SMTP_PORT,
    ):
        self.base = Path(base)
        self.source = LocalPostgres(self.base / "pg-source", source_port)
        self.warehouse = LocalPostgres(self.base / "pg-warehouse", warehouse_port)
        self.smtp_port = smtp_port

    @property
    def source_admin_uri(self) -> str:
        return self.source.uri("source")

    @property
    def warehouse_uri(self) -> str:
        return self.warehouse.uri("warehouse")

    def up(self) -> Stack:
        self.source.start()
        self.warehouse.start()
        self.source.create_database("source")
        self.warehouse.create_database("warehouse")
        self.warehouse.create_database("airflow")
        with psycopg.connect(self.source_admin_uri) as conn:
            demo_source.apply_migrations(conn)
        return self

    def down(self) -> None:
        self.source.stop()
        self.warehouse.stop()

    def env(self) -> dict[str, str]:
        """Environment for Airflow, dbt and the bundle's code against this stack."""
        home = self.base / "airflow"
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.warehouse.uri("airflow").replace(
                "postgresql://", "postgresql+psycopg2://"
            ),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__API__BASE_URL": "http://localhost:8080",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW_CONN_SUPABASE_SOURCE": self.source.uri("source", user="replicator"),
            "AIRFLOW_CONN_WAREHOUSE": self.warehouse_uri,
            "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://127.0.0.1:{self.smtp_port}?disable_ssl=true&disable_tls=true",
            "MEDALLION_ALERT_EMAILS": os.environ.get("MEDALLION_ALERT_EMAILS", "oncall@example.com"),
            "WAREHOUSE_HOST": "127.0.0.1",
            "WAREHOUSE_PORT": str(self.warehouse.port),
            "WAREHOUSE_USER": "postgres",
            "WAREHOUSE_PASSWORD": "",
            "WAREHOUSE_DB": "warehouse",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), os.environ.get("PYTHONPATH")])),
        }

    def airflow(self, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
        """Run the `airflow` CLI of this venv against the stack."""
        cmd = [str(Path(sys.executable).with_name("airflow")), *args]
        proc = subprocess.run(cmd, env={**os.environ, **self.env()}, capture_output=quiet, text=True)
        if check and proc.returncode:
            why = "".join(": " + t for t in (proc.stderr or proc.stdout or "").strip().splitlines()[-1:])
            raise RuntimeError(f"`airflow {' '.join(args)}` exited with {proc.returncode}{why}")
        return proc

    def migrate_airflow(self) -> None:
        """Airflow's metadata schema, then the pools the DAGs use (as docker-compose's airflow-init does)."""
        self.airflow("db", "migrate", quiet=True)
        self.airflow("pools", "import", str(POOLS_FILE), quiet=True)


def seed_if_empty(stack: Stack, as_of: datetime, scale: float = 1.0) -> bool:
    with psycopg.connect(stack.source_admin_uri) as conn:
        if demo_source.clock(conn) is not None:
            return False
        counts = demo_source.seed(conn, as_of, scale=scale)
    print("seeded source:", ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return True


def bronze_report(stack: Stack, since: datetime) -> str:
    """Rows per table loaded since `since`, and whether bronze matches the source."""
    lines = [f"{'table':22} {'rows loaded':>12} {'rows/s':>10} {'source rows':>12} {'bronze live':>12}  match"]
    with psycopg.connect(stack.warehouse_uri) as wh, psycopg.connect(stack.source_admin_uri) as src:
        batches = wh.execute(
            """select table_name, sum(rows_written), sum(rows_read) / nullif(sum(seconds), 0)
                 from ops.replication_batches where started_at >= %s and status = 'success'
                  and mode <> 'reconcile'
                group by table_name order by table_name""",
            (since,),
        ).fetchall()
        for table, rows, rate in batches:
            n_src = src.execute(f'select count(*) from public."{table}"').fetchone()[0]
            n_live = wh.execute(f"""select count(*) from (select distinct on (id) _deleted_at
                                      from bronze_supabase."{table}" order by id, _cursor desc nulls last,
                                      _loaded_at desc) t where _deleted_at is null""").fetchone()[0]
            lines.append(
                f"{table:22} {rows:>12,} {rate or 0:>10,.0f} {n_src:>12,} {n_live:>12,}  "
                f"{'yes' if n_src == n_live else 'NO'}"
            )
    return "\n".join(lines)


def kpi_report(stack: Stack, days: int = 7) -> str:
    """MRR, active organizations and sessions per day from gold, the last `days` days with data."""
    lines = [f"{'day':10} {'MRR ($)':>12} {'active orgs':>12} {'sessions':>10}"]
    with psycopg.connect(stack.warehouse_uri) as wh:
        rows = wh.execute(
            """select date_day, mrr, active_organizations_1d, sessions_started from gold_metrics.v_daily_kpis
                order by date_day desc limit %s""",
            (days,),
        ).fetchall()
    for day, mrr, active, sessions in reversed(rows):
        lines.append(f"{day:%Y-%m-%d} {mrr:>12,.2f} {active:>12,} {sessions:>10,}")
    return "\n".join(lines)


def dags_test(stack: Stack, dag_id: str, logical_date: datetime) -> Path:
    """`airflow dags test` of one DAG on the stack, its log in .local/demo-<dag_id>.log; exits on failure.

    Through medallion.compat: its workaround for apache/airflow#73428 (a DAG with a deadline makes
    `dags test` exit 1 after a successful run in Airflow 3.3.2).
    """
    log = stack.base / f"demo-{dag_id}.log"
    with log.open("w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "medallion.compat", "dags", "test", dag_id, logical_date.isoformat()],
            env={**os.environ, **stack.env()},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        sys.exit(f"{dag_id} failed; see {log}")
    return log


def demo(stack: Stack, scale: float) -> None:
    t0 = time.monotonic()
    stack.up()
    print(f"source    {stack.source.uri('source')}\nwarehouse {stack.warehouse_uri}")
    as_of = demo_source.floor_hour(datetime.now(UTC))
    if not seed_if_empty(stack, as_of, scale):
        with psycopg.connect(stack.source_admin_uri) as conn:
            as_of = demo_source.clock(conn)
            print(f"source already seeded (clock at {as_of:%Y-%m-%d %H:%M} UTC); advancing it one hour")
            demo_source.advance(conn, hours=1)
            as_of = demo_source.clock(conn)
    print("migrating Airflow's metadata database ...")
    stack.migrate_airflow()
    started = datetime.now(UTC)
    interval_end = as_of
    print(
        f"running bronze_supabase through Airflow for the interval "
        f"[{interval_end - timedelta(hours=1):%Y-%m-%d %H:%M}, {interval_end:%H:%M}) UTC ..."
    )
    logs = [dags_test(stack, "bronze_supabase", interval_end)]
    # hard deletes (and anything a load missed) reach bronze through the reconciliation (every 6 h when scheduled)
    logs.append(dags_test(stack, "bronze_supabase_reconcile", interval_end))
    print(f"\nBronze load and reconciliation (Airflow logs: {', '.join(map(str, logs))})\n")
    print(bronze_report(stack, started))
    for dag_id in ("silver", "gold"):  # in order, as the bronze → silver → gold assets chain them
        t1 = time.monotonic()
        print(f"\nrunning {dag_id} (dbt via Cosmos) through Airflow for the same interval ...", end=" ", flush=True)
        log = dags_test(stack, dag_id, interval_end)
        print(f"done in {time.monotonic() - t1:.0f}s (Airflow log: {log})")
    print("\nGold KPIs, last 7 days (gold_metrics.v_daily_kpis)\n")
    print(kpi_report(stack))
    print(f"\ndemo finished in {time.monotonic() - t0:.0f}s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the servers and print the environment")
    sub.add_parser("down", help="stop the servers")
    sub.add_parser("destroy", help="stop the servers and delete .local/")
    sub.add_parser("env", help="print `export` lines for this stack")
    d = sub.add_parser("demo", help="seed, run the pipeline through Airflow, print the results")
    d.add_argument("--scale", type=float, default=1.0)
    sub.add_parser("airflow", help="run Airflow (api-server, scheduler, dag-processor, triggerer) on the stack")
    args = ap.parse_args(argv)
    stack = Stack()
    if args.cmd == "up":
        stack.up()
        print(f"source    {stack.source.uri('source')}\nwarehouse {stack.warehouse_uri}")
    elif args.cmd == "down":
        stack.down()
    elif args.cmd == "destroy":
        stack.down()
        shutil.rmtree(stack.base, ignore_errors=True)
    elif args.cmd == "env":
        for k, v in stack.env().items():
            print(f"export {k}='{v}'")
    elif args.cmd == "demo":
        demo(stack, args.scale)
    elif args.cmd == "airflow":
        from medallion.liveairflow import LiveAirflow

        stack.up()
        seed_if_empty(stack, demo_source.floor_hour(datetime.now(UTC)))
        live = LiveAirflow(stack, port=int(os.environ.get("MEDALLION_AIRFLOW_PORT", "8080")))
        print("starting api-server, scheduler, dag-processor, triggerer ...")
        live.start()
        print(f"Airflow UI: {live.url}  login: {live.user} / {live.password}  (logs: {live.home / 'logs'})")
        print("Ctrl-C stops every Airflow process (the Postgres servers keep running: `make down`)")
        try:
            while all(p.poll() is None for p in live.procs.values()):
                time.sleep(2)
            print("an Airflow process exited; stopping the others", file=sys.stderr)
        except KeyboardInterrupt:
            pass
        finally:
            live.stop()


if __name__ == "__main__":
    main()
