"""A real running Airflow (api-server, scheduler, dag-processor, triggerer) driven through its REST API."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from conftest import reset_connection_databases, wait_until

from medallion import config
from medallion.local.demo import browser_infra as demo_source
from medallion.local.liveairflow import AirflowStartError, LiveAirflow
from medallion.local.localpg import free_port

pytestmark = pytest.mark.slow
NOW = demo_source.floor_hour(datetime.now(UTC))


@pytest.fixture(scope="module")
def live(airflow_db):
    stack = airflow_db
    reset_connection_databases(stack, source_template=None)
    with psycopg.connect(stack.source.uri("browser_infra")) as conn:
        demo_source.seed(conn, NOW, scale=0.3)
    from aiosmtpd.controller import Controller
    from test_alerts import Inbox

    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=stack.smtp_port)  # AIRFLOW_CONN_SMTP_DEFAULT's port
    smtp.start()
    env = {
        # one scheduled interval since the start date, so unpausing does not start a long catchup
        "MEDALLION_START_DATE": (NOW - timedelta(hours=1)).isoformat(),
        # a bronze run takes longer than 3 s: the real scheduler must notice the miss and email it
        "MEDALLION_BRONZE_DEADLINE_MINUTES": "0.05",
    }
    airflow = LiveAirflow(stack, port=free_port(), env=env)
    airflow.inbox = inbox
    try:
        airflow.start()
        yield airflow
    finally:
        pids = [p.pid for p in airflow.procs.values()]
        airflow.stop()
        smtp.stop()
    for pid in pids:  # nothing left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_dag_processor_parses_every_dag_without_errors(live):
    dag_ids = {"freshness", "docs"}  # and one DAG per product and layer (dbt: per job)
    for product in map(config.product, config.product_ids()):
        dag_ids |= {f"bronze_{product.id}", f"bronze_{product.id}_reconcile"}
        dag_ids |= {product.dag_id(job.name) for job in product.dbt_jobs}
    wait_until(lambda: dag_ids <= {d["dag_id"] for d in live.api("GET", "/dags", params={"limit": 500})["dags"]},
               120, f"dag-processor did not register {dag_ids}")  # fmt: skip
    assert live.api("GET", "/importErrors")["total_entries"] == 0


def test_deadline_miss_is_emailed_by_the_real_scheduler(live):
    """The bronze deadline is 3 s here; the scheduler sees the miss, the triggerer sends the email."""
    live.api("PATCH", "/dags/bronze_browser_infra", json={"is_paused": False})  # its catch-up run is late

    def late_mail():
        return [m for m in live.inbox.messages if m.subject.startswith("[medallion] LATE bronze_browser_infra")]

    mails = wait_until(late_mail, 300, "no deadline-miss email arrived")
    assert "past its deadline" in mails[0].text or "after its deadline" in mails[0].text
    assert mails[0].to == ["oncall@example.com"]


def test_trigger_bronze_with_params_through_the_rest_api(live):
    live.api("PATCH", "/dags/bronze_browser_infra", json={"is_paused": False})
    run = live.api("POST", "/dags/bronze_browser_infra/dagRuns",
                   json={"logical_date": None, "conf": {"tables": ["plans", "users"]}})  # fmt: skip
    assert live.wait_for_run("bronze_browser_infra", run["dag_run_id"]) == "success"
    with psycopg.connect(live.stack.warehouse.uri("warehouse")) as wh, \
            psycopg.connect(live.stack.source.uri("browser_infra")) as src:  # fmt: skip
        loaded = dict(wh.execute(
            "select table_name, sum(rows_written) from ops.replication_batches where run_id = %s group by 1",
            (run["dag_run_id"],)).fetchall())  # fmt: skip
        assert set(loaded) == {"plans", "users"}
        for table in loaded:
            assert wh.execute(f"select count(*) from bronze_browser_infra.{table}").fetchone()[0] == src.execute(
                f"select count(*) from public.{table}").fetchone()[0]  # fmt: skip


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def runs_of(live, dag_id: str, run_type: str, after: str) -> list[dict]:
    runs = live.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 50})["dag_runs"]
    return [r for r in runs if r["run_type"] == run_type and ts(r["queued_at"]) > ts(after)]


def wait_for_asset_run(live, dag_id: str, after: str, timeout: float = 900) -> dict:
    """The first run of `dag_id` the scheduler created from an asset event after `after`, once finished."""
    run = wait_until(lambda: (runs_of(live, dag_id, "asset_triggered", after) or [None])[-1], timeout,
                     f"the scheduler created no asset-triggered {dag_id} run")  # fmt: skip
    assert live.wait_for_run(dag_id, run["dag_run_id"], timeout) == "success", f"{dag_id} {run['dag_run_id']}"
    return run


def test_the_scheduler_runs_silver_from_bronze_and_gold_from_silver_through_assets(live):
    """bronze lands -> `bronze_browser_infra_tables` asset -> silver -> `silver_browser_infra_tables` asset -> gold,
    by the scheduler."""
    for dag_id in ("bronze_browser_infra", "silver_browser_infra"):
        live.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    bronze = live.api("POST", "/dags/bronze_browser_infra/dagRuns", json={"logical_date": None})
    assert live.wait_for_run("bronze_browser_infra", bronze["dag_run_id"]) == "success"
    bronze = live.api("GET", f"/dags/bronze_browser_infra/dagRuns/{bronze['dag_run_id']}")
    wait_for_asset_run(live, "silver_browser_infra", after=bronze["queued_at"])

    # gold only once silver exists: unpausing starts its latest scheduled interval at once. `docs`
    # follows every gold build (test_dbt_docs_follow_gold_and_are_served_by_the_api_server)
    live.api("PATCH", "/dags/docs", json={"is_paused": False})
    live.api("PATCH", "/dags/gold_browser_infra", json={"is_paused": False})
    silver = live.api("POST", "/dags/silver_browser_infra/dagRuns", json={"logical_date": None})
    assert live.wait_for_run("silver_browser_infra", silver["dag_run_id"], 900) == "success"
    wait_for_asset_run(live, "gold_browser_infra", after=silver["queued_at"])

    with psycopg.connect(live.stack.warehouse.uri("warehouse")) as wh, \
            psycopg.connect(live.stack.warehouse.uri("airflow")) as meta:  # fmt: skip
        assert wh.execute("select count(*) from gold_marts.agg_daily_sessions").fetchone()[0] > 0
        assert wh.execute("select count(*) from gold_metrics.v_mrr").fetchone()[0] > 0
        builds = meta.execute(
            "select dag_id, run_id, start_date, end_date from task_instance "
            "where task_id = 'dbt.dbt_producer_watcher' and state = 'success' order by start_date"
        ).fetchall()  # fmt: skip
    assert {b[0] for b in builds} == {"silver_browser_infra", "gold_browser_infra"}
    for before, after in itertools.pairwise(builds):  # the product's dbt pool: one dbt build at a time
        assert before[3] <= after[2], f"{before[:2]} and {after[:2]} overlapped"


DOCS_PAGE = "/cosmos/medallion/dbt_docs_index.html"  # Cosmos' plugin: [cosmos] dbt_docs_projects (localstack)


def published_docs(live) -> dict:
    """A successful `docs` run: the newest one, or one triggered now (a test run on its own)."""
    runs = live.api("GET", "/dags/docs/dagRuns", params={"order_by": "-run_after", "limit": 20})["dag_runs"]
    run = next((r for r in runs if r["state"] in ("queued", "running", "success")), None)
    if run is None:
        live.api("PATCH", "/dags/docs", json={"is_paused": False})
        run = live.api("POST", "/dags/docs/dagRuns", json={"logical_date": None})
    assert live.wait_for_run("docs", run["dag_run_id"], 600) == "success", run["dag_run_id"]
    return run


def test_dbt_docs_follow_gold_and_are_served_by_the_api_server(live):
    """gold_browser_infra publishes -> the scheduler runs `docs` (dbt docs generate) -> the api-server
    serves the docs, with the warehouse's catalog, under Browse → dbt Docs. Uses the gold run of the
    asset-chain test above (`docs` was unpaused before it); run on its own (`-k`), it triggers `docs`."""
    runs = live.api("GET", "/dags/gold_browser_infra/dagRuns", params={"order_by": "-run_after"})["dag_runs"]
    gold = next((r for r in runs if r["state"] == "success"), None)
    if gold is not None:
        wait_for_asset_run(live, "docs", after=gold["start_date"], timeout=600)
    else:
        published_docs(live)

    plugins = live.api("GET", "/plugins", params={"limit": 100})["plugins"]
    views = [v for p in plugins if p["name"] == "cosmos" for v in p["external_views"]]
    assert [(v["name"], v["category"], v["href"]) for v in views] == [
        ("dbt Docs (medallion warehouse)", "Browse", DOCS_PAGE)], views  # fmt: skip

    def get(path: str) -> httpx.Response:
        resp = httpx.get(live.url + path, headers={"Authorization": f"Bearer {live.token()}"}, timeout=30)
        assert resp.status_code == 200, f"{path}: HTTP {resp.status_code} {resp.text[:300]}"
        return resp

    index = get(DOCS_PAGE)
    assert "<title>dbt Docs</title>" in index.text and "hashChangeLock" in index.text  # dbt's app + Cosmos' script
    manifest = get("/cosmos/medallion/manifest.json").json()
    catalog = get("/cosmos/medallion/catalog.json").json()
    mart = "model.medallion.agg_daily_sessions"
    assert manifest["nodes"][mart]["description"].strip() and manifest["nodes"][mart]["columns"]
    if gold is not None:  # the catalog describes the table gold just built
        assert catalog["nodes"][mart]["metadata"]["schema"] == "gold_marts"
        assert {"organization_id", "session_date", "sessions_started"} <= set(catalog["nodes"][mart]["columns"])
    # a bronze table (loaded by the tests above): every column the warehouse has is described in the docs
    plans = manifest["sources"]["source.medallion.browser_infra.plans"]["columns"]
    assert plans["monthly_price_cents"]["description"].startswith("List price per month")
    assert set(plans) == set(catalog["sources"]["source.medallion.browser_infra.plans"]["columns"])
    # nothing secret in what the page serves: Cosmos' plugin adds no login to its URLs (README)
    assert httpx.get(live.url + "/cosmos/medallion/manifest.json", timeout=30).status_code == 200
    secret = (live.home / "jwt_secret").read_text()
    for body in (index.text, json.dumps(manifest), json.dumps(catalog)):
        assert secret not in body


def test_backfill_of_a_date_range_succeeds(live):
    # six hourly intervals: enough to prove runs side by side cover the range exactly (48 took 6-15 min)
    start, hours = NOW - timedelta(days=3), 6
    backfill = live.api("POST", "/backfills", json={
        "dag_id": "bronze_browser_infra", "from_date": start.isoformat(),
        "to_date": (start + timedelta(hours=hours)).isoformat(),
        "max_active_runs": 3, "dag_run_conf": {"tables": ["plans"]}, "reprocess_behavior": "none",
    })  # fmt: skip

    def finished():
        b = live.api("GET", f"/backfills/{backfill['id']}")
        return b if b.get("completed_at") else None

    wait_until(finished, 1200, "backfill did not complete")
    runs = live.api("GET", "/dags/bronze_browser_infra/dagRuns", params={"run_type": "backfill", "limit": 100})[
        "dag_runs"
    ]
    assert len(runs) >= hours and {r["state"] for r in runs} == {"success"}
    with psycopg.connect(live.stack.warehouse.uri("warehouse")) as wh:
        covered = wh.execute(
            "select min(interval_start), max(interval_end), count(*) from ops.replication_batches "
            "where table_name = 'plans' and status = 'success' and run_id like 'backfill%%'"
        ).fetchone()
    assert covered[0] <= start and covered[1] >= start + timedelta(hours=hours) and covered[2] == len(runs)

    # bronze's backfill runs published its asset: the scheduler carries on with silver, then gold
    # (both unpaused by the asset-chain test above)
    events = live.api("GET", "/assets/events", params={
        "source_dag_id": "bronze_browser_infra", "order_by": "-timestamp", "limit": 100})["asset_events"]  # fmt: skip
    last = next(e for e in events if e["source_run_id"].startswith("backfill__"))
    silver = wait_for_asset_run(live, "silver_browser_infra", after=last["timestamp"])
    wait_for_asset_run(live, "gold_browser_infra", after=silver["start_date"])
    # the UI shows which interval the asset-triggered run processed: the scheduler wrote it as its note
    note = live.api("GET", f"/dags/silver_browser_infra/dagRuns/{silver['dag_run_id']}")["note"]
    assert note and note.startswith("Processes the interval ["), note


def test_a_taken_port_is_a_clear_error(airflow_db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(AirflowStartError, match=f"port {port} is already taken"):
            LiveAirflow(airflow_db, port=port).start()


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = config.ROOT / "test-artifacts"


def test_browser_login_docs_trigger_form_and_a_successful_run(live):
    """Headless Chromium: log in, see the layer DAGs and their docs, trigger bronze from its params form,
    open the dbt docs from the Browse menu."""
    from playwright.sync_api import expect, sync_playwright

    assert os.path.exists(CHROMIUM), "Debian's chromium is installed by `make browser` (part of `make test`)"
    ARTIFACTS.mkdir(exist_ok=True)
    layer_dags = ["bronze_browser_infra", "silver_browser_infra", "gold_browser_infra"]
    live.api("PATCH", "/dags/bronze_browser_infra", json={"is_paused": False})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(live.url, wait_until="networkidle")
            page.fill("input[name=username]", live.user)
            page.fill("input[name=password]", live.password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/auth/login" not in url)

            page.goto(f"{live.url}/dags", wait_until="networkidle")
            for dag_id in layer_dags:
                expect(page.get_by_text(dag_id, exact=True).first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "1-dags.png")

            page.goto(f"{live.url}/dags/bronze_browser_infra", wait_until="networkidle")
            page.get_by_role("button", name="Dag Docs").click()
            expect(page.get_by_text("When it fails").first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "2-bronze-docs.png")
            page.keyboard.press("Escape")

            page.get_by_role("button", name="Trigger Dag").click()
            dialog = page.get_by_role("dialog").filter(has_text="Trigger Dag - bronze_browser_infra")
            expect(dialog.get_by_text("Tables to load; leave empty for all.")).to_be_visible()  # our Param's text
            expect(dialog.get_by_role("checkbox", name="Full refresh")).to_be_visible()
            for name in ("Tables", "Full refresh"):  # optional params: no required-field `*` by their label
                label = dialog.locator("label", has_text=name).first.inner_text()
                assert "*" not in label, label
            tables = dialog.get_by_label("Select one or multiple values")  # a pick list of the declared tables
            tables.fill("plans")
            tables.press("Enter")
            page.screenshot(path=ARTIFACTS / "3-trigger-form.png")
            newest = {"order_by": "-run_after", "limit": 20}  # other tests leave many runs (a backfill)
            before = {
                r["dag_run_id"]
                for r in live.api("GET", "/dags/bronze_browser_infra/dagRuns", params=newest)["dag_runs"]
            }
            dialog.get_by_role("button", name="Trigger").click()

            def new_run():
                runs = live.api("GET", "/dags/bronze_browser_infra/dagRuns", params=newest)["dag_runs"]
                return next((r for r in runs if r["dag_run_id"] not in before and r["run_type"] == "manual"), None)

            run = wait_until(new_run, 60, "the trigger form created no run")
            assert run["conf"] == {"tables": ["plans"], "full_refresh": False}
            assert live.wait_for_run("bronze_browser_infra", run["dag_run_id"]) == "success"
            page.goto(f"{live.url}/dags/bronze_browser_infra/runs/{run['dag_run_id']}", wait_until="networkidle")
            # the run page fetches the run after load: on a busy CI machine that took over the default 5 s
            expect(page.get_by_text("success").first).to_be_visible(timeout=30_000)
            page.screenshot(path=ARTIFACTS / "4-run-succeeded.png")

            # the dbt docs, where the users already are: Browse → dbt Docs, then a gold model's page
            published_docs(live)
            page.get_by_role("button", name="Browse").click()
            with page.context.expect_page() as opened:  # Cosmos' view is an external link: a new tab
                page.get_by_role("menuitem", name="dbt Docs (medallion warehouse)").click()
            docs = opened.value
            # dbt docs routes by hash once its app has started: under load that is after `networkidle`
            expect(docs).to_have_url(re.compile(re.escape(f"{live.url}{DOCS_PAGE}#!/")), timeout=60_000)
            docs.goto(f"{live.url}{DOCS_PAGE}#!/model/model.medallion.agg_daily_sessions")  # a gold model's page
            column = docs.get_by_text("Sessions started that day.").first  # a column's description
            expect(column).to_be_visible(timeout=30_000)  # once the app has read the served manifest
            expect(docs.get_by_text("Organization x day, dense and zero-filled").first).to_be_visible()
        finally:
            page.screenshot(path=ARTIFACTS / "last.png")
            for tab in page.context.pages[1:]:  # the dbt docs, if opened
                tab.screenshot(path=ARTIFACTS / "5-dbt-docs.png")
            browser.close()
