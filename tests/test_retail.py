"""The retail product end to end on real Postgres: JSONB payloads -> bronze (replication) -> dbt silver with a
quarantine -> gold trends -> platinum on demand, and the rejection-spike email (real SMTP, aiosmtpd).

One module fixture seeds a source (the demo generator plus planted payloads: one per validation rule, a
duplicate delivery, a weekly spike, a burst of rejections), replicates it and builds the scheduled layers
then platinum once (dbt in process); the tests are cheap assertions on what that built.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import STACK
from product_analytics_pipeline import dbt

from medallion import config, outbox, quality, replication, warehouse
from medallion.local.demo import retail as generator

SQL = Path(__file__).parent / "sql"
AS_OF = generator.floor_hour(datetime.now(UTC))  # the recency, future-date and current_date rules use the real clock
TODAY = AS_OF.date()
PLANTED_AT = AS_OF - timedelta(hours=2)
SCHEDULED = "path:models/staging/retail path:models/core/retail path:models/marts/retail"
PLATINUM = "path:models/platinum/retail"
CAUTIOUS = ("--indirect-selection", "cautious")  # as transform.dbt_task_group builds
CATEGORIES = ["beverages", "snacks", "personal_care", "household", "dairy", "canned_goods"]

CLEAN = {  # valid, though messy: numbers as strings, padded lower-case currency, a category synonym, extra keys
    "transaction_id": "TEST-CLEAN", "transaction_date": (TODAY - timedelta(days=1)).isoformat(), "sku": " bev-001",
    "quantity": "2", "unit_price": "75.00", "amount": 150, "currency": " php", "store_id": "STORE-TEST",
    "basket_id": "BT-1", "category": " Drinks", "customer_email": "shopper@example.com", "pos_version": "4.2.1",
}  # fmt: skip


def broken(**changes) -> dict:
    payload = {**CLEAN, "transaction_id": f"TEST-{len(changes)}-{sorted(changes)}"}
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    return payload


# every validation rule, with a payload that breaks it (and only it) -> the exact reasons silver must give
RULES: dict[str, tuple[object, set[str]]] = {
    "not_an_object (string)": ("ERROR: truncated line 17", {"not_an_object:payload"}),
    "not_an_object (array)": (["T1", 2], {"not_an_object:payload"}),
    **{f"missing_key {k}": (broken(**{k: ...}), {f"missing_key:{k}"})
       for k in ("transaction_id", "transaction_date", "sku", "quantity", "unit_price", "store_id")},
    "not_a_number quantity": (broken(quantity="two", amount=...), {"not_a_number:quantity"}),
    "not_a_number unit_price": (broken(unit_price="12,50", amount=...), {"not_a_number:unit_price"}),
    "not_a_number amount": (broken(amount="lots"), {"not_a_number:amount"}),
    "not_positive quantity": (broken(quantity=0, amount=...), {"not_positive:quantity", "not_positive:amount"}),
    "not_positive amount": (broken(quantity=1, unit_price=10, amount=-10), {"not_positive:amount"}),
    "amount_mismatch": (broken(amount=999), {"amount_mismatch:amount"}),
    "future_date": (broken(transaction_date=(TODAY + timedelta(days=2)).isoformat()), {"future_date:transaction_date"}),
    "bad_date (no such day)": (broken(transaction_date="2026-02-30"), {"bad_date:transaction_date"}),
    "bad_date (third format)": (broken(transaction_date="13/45/2026"), {"bad_date:transaction_date"}),
    "unknown_category": (broken(category="Toys"), {"unknown_category:category"}),
    "unknown_currency": (broken(currency="EUR"), {"unknown_currency:currency"}),
    "unknown_product": (broken(sku="ZZZ-404"), {"unknown_product:sku"}),
}  # fmt: skip
PRODUCT_RULES: dict[str, tuple[object, set[str]]] = {
    "not_an_object": (["SNK-010", "Broken row"], {"not_an_object:payload"}),
    "missing_key sku": ({"name": "No sku", "category": "snacks", "unit_price": 5}, {"missing_key:sku"}),
    "unknown_category": ({"sku": "TOY-9", "name": "Yo-yo", "category": "Toys", "unit_price": 5},
                         {"unknown_category:category"}),
    "not_a_number unit_price": ({"sku": "SNK-8", "name": "x", "category": "snacks", "unit_price": "free"},
                                {"not_a_number:unit_price"}),
    "not_positive unit_price": ({"sku": "SNK-7", "name": "x", "category": "snacks", "unit_price": 0},
                                {"not_positive:unit_price"}),
}  # fmt: skip
SPIKE_WEEK = TODAY - timedelta(days=TODAY.weekday() + 5 * 7)  # a Monday five weeks back: complete, 8+ weeks before it
BURST_DAY = TODAY - timedelta(days=3)
BURST_AT = datetime.combine(BURST_DAY, datetime.min.time(), UTC) + timedelta(hours=12)  # 100 rejections at noon


@dataclass
class Retail:
    src_uri: str
    wh_uri: str
    platinum_before: int  # platinum relations after the scheduled build, before the platinum job

    def wh(self) -> psycopg.Connection:
        return psycopg.connect(self.wh_uri, autocommit=True)

    def src(self) -> psycopg.Connection:
        return psycopg.connect(self.src_uri, autocommit=True)


def land(conn: psycopg.Connection, table: str, payload, request_id: str, at: datetime) -> None:
    conn.execute(
        f"insert into retail.{table} (payload, source, request_id, received_at) values (%s, 'webhook', %s, %s)",
        (json.dumps(payload), request_id, at),
    )


def plant(conn: psycopg.Connection) -> None:
    for name, (payload, _) in RULES.items():
        land(conn, "transactions_raw", payload, f"req_rule_{name}", PLANTED_AT)
    land(conn, "transactions_raw", CLEAN, "req_clean", PLANTED_AT)
    land(conn, "transactions_raw", CLEAN, "req_clean", PLANTED_AT + timedelta(seconds=30))  # the webhook's retry
    us_date = {**CLEAN, "transaction_id": "TEST-US-DATE", "transaction_date": f"{TODAY - timedelta(days=1):%m/%d/%Y}"}
    land(conn, "transactions_raw", us_date, "req_us_date", PLANTED_AT)
    for name, (payload, _) in PRODUCT_RULES.items():
        land(conn, "products_raw", payload, f"req_product_{name}", PLANTED_AT)
    # the same product again, later, re-spelled: silver keeps one BEV-001 with the newest spelling, standardised
    land(conn, "products_raw", {"sku": " bev-001 ", "name": "  coca-cola   1.5L ", "category": "DRINKS",
                                "unit_price": "76.00"}, "req_respelled", PLANTED_AT)  # fmt: skip
    for i in range(150):  # a dairy spike in one week: ~10x its usual weekly revenue
        spike = {**CLEAN, "transaction_id": f"TEST-SPIKE-{i}", "sku": "DRY-002", "category": "dairy",
                 "quantity": 6, "unit_price": 145, "amount": 870,
                 "transaction_date": (SPIKE_WEEK + timedelta(days=i % 7)).isoformat()}  # fmt: skip
        land(conn, "transactions_raw", spike, f"req_spike_{i}", PLANTED_AT)
    for i in range(100):  # a burst of rejections (the feed lost its store_id): the data-quality alert
        bad = broken(store_id=...) | {"transaction_id": f"TEST-BURST-{i}"}
        land(conn, "transactions_raw", bad, f"req_burst_{i}", BURST_AT + timedelta(seconds=i))


@pytest.fixture(scope="module")
def retail(stack) -> Retail:
    src_db, wh_db = "retail_src", "retail_wh"
    with psycopg.connect(stack.source.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"drop database if exists {src_db} with (force)")
        conn.execute(f"create database {src_db}")
    with psycopg.connect(stack.warehouse.uri("postgres"), autocommit=True) as conn:
        conn.execute(f"drop database if exists {wh_db} with (force)")
    stack.warehouse.create_database(wh_db)
    r = Retail(stack.source.uri(src_db), stack.warehouse.uri(wh_db), 0)
    with psycopg.connect(r.src_uri) as conn:
        generator.seed(conn, AS_OF)
        plant(conn)
        conn.commit()
    with psycopg.connect(stack.source.uri(src_db, user="replicator")) as src, psycopg.connect(r.wh_uri) as wh:
        warehouse.migrate(wh)
        wh.commit()
        for spec in config.tables("retail").values():
            replication.replicate(spec, src, wh, now=AS_OF + timedelta(hours=1))
    # what the scheduled silver and gold runs build (models and data tests), with Cosmos' cautious indirect
    # selection: a test reading an unselected model (platinum's relationships to silver) is not run
    dbt("build", SCHEDULED, r.wh_uri, None, None, *CAUTIOUS)
    with r.wh() as wh:
        r.platinum_before = wh.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'platinum_retail'"
        ).fetchone()[0]
    dbt("build", PLATINUM, r.wh_uri, None, None, *CAUTIOUS)  # the manual platinum job
    return r


def one(conn: psycopg.Connection, query: str, *params):
    return conn.execute(query, params or None).fetchone()[0]


# --- silver: schema enforcement with a quarantine --------------------------------------------------------


def test_every_validation_rule_quarantines_the_payload_that_breaks_it_with_rule_and_key(retail):
    with retail.wh() as wh:
        got = {
            rid: set(reasons)
            for rid, reasons in wh.execute(
                """select q.request_id, q.reasons from silver_retail.silver_quarantine q
                    where q.request_id like 'req_rule_%' or q.request_id like 'req_product_%'"""
            )
        }
        validated = {r[0] for r in wh.execute("select transaction_id from silver_retail.silver_validated_transactions")}
    assert {f"req_rule_{n}": want for n, (_, want) in RULES.items()} == {
        k: v for k, v in got.items() if k.startswith("req_rule_")
    }
    assert {f"req_product_{n}": want for n, (_, want) in PRODUCT_RULES.items()} == {
        k: v for k, v in got.items() if k.startswith("req_product_")
    }
    rule_names = {reason.split(":")[0] for _, reasons in RULES.values() for reason in reasons}
    assert len(rule_names) == 10, rule_names  # every transaction rule of silver_transaction_checks.yml
    assert not any(isinstance(p, dict) and p.get("transaction_id") in validated for p, _ in RULES.values())


def test_a_clean_messy_payload_is_typed_standardised_and_its_retry_counted_as_a_duplicate(retail):
    with retail.wh() as wh:
        row = wh.execute(
            """select transaction_id, transaction_date, sku, product_name, category, quantity, unit_price, amount,
                      currency, extra_keys, validated_at > now() - interval '1 hour'
                 from silver_retail.silver_validated_transactions where transaction_id = 'TEST-CLEAN'"""
        ).fetchone()
        statuses = sorted(r[0] for r in wh.execute(
            "select status from silver_retail.silver_transaction_checks where request_id = 'req_clean'"))  # fmt: skip
        us = one(wh, "select transaction_date from silver_retail.silver_validated_transactions "
                     "where transaction_id = 'TEST-US-DATE'")  # fmt: skip
        product = wh.execute(
            "select product_name, category, unit_price, name_variants from silver_retail.silver_products "
            "where sku = 'BEV-001'"
        ).fetchone()
        skus = one(wh, "select count(*) from silver_retail.silver_products where sku ilike '%bev-001%'")
    assert row == ("TEST-CLEAN", TODAY - timedelta(days=1), "BEV-001", "Coca-Cola 1.5l", "beverages", 2,
                   Decimal("75.00"), Decimal("150.00"), "PHP", ["customer_email", "pos_version"], True)  # fmt: skip
    assert statuses == ["duplicate", "valid"]
    assert us == TODAY - timedelta(days=1)  # MM/DD/YYYY read like ISO
    assert skus == 1 and product == ("Coca-Cola 1.5l", "beverages", Decimal("76.00"), 1)


def test_the_counts_add_up_valid_plus_quarantined_plus_duplicates_is_landed(retail):
    with retail.src() as src:
        landed = one(src, "select count(*) from retail.transactions_raw")
        products_landed = one(src, "select count(*) from retail.products_raw")
    with retail.wh() as wh:
        c = generator.counts(wh)
        validated = one(wh, "select count(*) from silver_retail.silver_validated_transactions")
        quarantined = one(
            wh, "select count(*) from silver_retail.silver_quarantine where landing_table = 'transactions'"
        )
        in_both = one(
            wh,
            """select count(*) from silver_retail.silver_validated_transactions v
                              join silver_retail.silver_quarantine q
                                on q.landing_table = 'transactions' and q.landing_id = v.landing_id""",
        )
        p = dict(wh.execute("select status, count(*) from silver_retail.silver_product_checks group by 1").fetchall())
        catalogue = one(wh, "select count(*) from silver_retail.silver_products")
        q_products = one(wh, "select count(*) from silver_retail.silver_quarantine where landing_table = 'products'")
    assert c["landed"] == landed > 16_000
    assert c["valid"] == validated and c["quarantined"] == quarantined and in_both == 0
    assert validated + quarantined + c["duplicate"] == landed
    assert c["duplicate"] >= 1 and 0.02 < quarantined / landed < 0.1, c  # the feeds' mess, plus the planted burst
    assert p["current"] == catalogue and p["quarantined"] == q_products >= 5
    assert p["current"] + p["quarantined"] + p["superseded"] == products_landed


def test_dbt_test_failures_are_stored_in_schema_test_failures_by_the_build(retail):
    with retail.wh() as wh:
        tables = {r[0] for r in wh.execute(
            "select table_name from information_schema.tables where table_schema = 'test_failures'")}  # fmt: skip
    assert {"unique_silver_validated_transactions_transaction_id",
            "not_null_silver_validated_transactions_transaction_id",
            "assert_retail_payload_in_one_place"} <= tables, sorted(tables)  # fmt: skip
    assert len(tables) > 40


# --- gold --------------------------------------------------------------------------------------------------


def monthly_truth(wh) -> dict[tuple[date, str], Decimal]:
    return {
        (m, c): r
        for m, c, r in wh.execute(
            """select date_trunc('month', transaction_date)::date, category, sum(amount)
                 from silver_retail.silver_validated_transactions group by 1, 2"""
        )
    }


def growth(cur: Decimal, prior: Decimal | None) -> Decimal | None:
    return None if not prior else round((cur - prior) / prior, 4)


def test_monthly_summary_mom_and_yoy_are_right_at_the_year_boundary_and_for_a_new_category(retail):
    with retail.wh() as wh:
        truth = monthly_truth(wh)
        rows = {(r[0], r[1]): r[2:] for r in wh.execute(
            """select month, category, revenue, prev_month_revenue, mom_growth, prev_year_revenue, yoy_growth
                 from gold_retail.gold_monthly_summary""")}  # fmt: skip
    months = sorted({m for m, _ in truth})
    assert len(months) >= 13 and len(rows) == len(months) * len(CATEGORIES)
    januaries = [m for m in months if m.month == 1 and date(m.year - 1, 12, 1) in months]
    assert januaries, months
    jan = januaries[0]
    dec = date(jan.year - 1, 12, 1)
    for category in CATEGORIES:
        revenue, prev, mom, _, _ = rows[(jan, category)]
        want_prev = truth.get((dec, category), Decimal(0))
        assert (revenue, prev) == (truth.get((jan, category), Decimal(0)), want_prev), category
        assert mom == growth(revenue, want_prev), (category, mom)
    yoy_months = [m for m in months if date(m.year - 1, m.month, 1) in months]
    assert yoy_months
    for m in yoy_months:
        for category in ("beverages", "snacks"):
            revenue, _, _, prev_year, yoy = rows[(m, category)]
            assert prev_year == truth.get((date(m.year - 1, m.month, 1), category), Decimal(0))
            assert yoy == growth(revenue, prev_year), (m, category)
    # canned goods launched 100 days ago: zero before, then a first month with no prior month to grow from
    canned = sorted((m, v) for (m, c), v in rows.items() if c == "canned_goods")
    first = next(i for i, (_, v) in enumerate(canned) if v[0] > 0)
    assert first > 0 and all(v[0] == 0 for _, v in canned[:first])
    assert canned[first][1][1:3] == (Decimal(0), None)  # prior month 0 -> growth null, not a division by zero
    assert all(v[4] is None for _, v in canned)  # no year-ago sales: no YoY


def test_category_trends_flag_the_planted_spike_by_the_documented_z_score_rule(retail):
    with retail.wh() as wh:
        rows = wh.execute(
            """select week_start, category, revenue, trailing_weeks, z_score, is_anomaly, is_complete_week
                 from gold_retail.gold_category_trends order by category, week_start"""
        ).fetchall()
        last_day = one(wh, "select max(transaction_date) from silver_retail.silver_validated_transactions")
    by_category = defaultdict(list)
    for r in rows:
        by_category[r[1]].append(r)
    import statistics

    for category, weeks in by_category.items():  # the rule, recomputed for every row
        for i, (week, _, revenue, n, z, flagged, complete) in enumerate(weeks):
            window = [w[2] for w in weeks[max(0, i - 8) : i]]
            assert n == len(window) and complete == (week + timedelta(days=6) <= last_day)
            sd = statistics.stdev(window) if len(window) > 1 else None
            want_z = round((revenue - statistics.mean(window)) / Decimal(sd), 3) if sd else None
            assert z is None if want_z is None else abs(z - want_z) <= Decimal("0.002"), (category, week, z, want_z)
            assert flagged == bool(complete and n >= 4 and want_z is not None and abs(want_z) >= 3), (category, week)
    spike = next(r for r in by_category["dairy"] if r[0] == SPIKE_WEEK)
    assert spike[5] and spike[4] > 3, spike
    assert not by_category["dairy"][-1][6] or by_category["dairy"][-1][0] + timedelta(days=6) <= last_day


# --- platinum -----------------------------------------------------------------------------------------------


def test_platinum_is_built_on_demand_only_never_by_the_scheduled_runs(retail):
    p = config.product("retail")
    jobs = {j.name: j for j in p.dbt_jobs}
    assert jobs["platinum"].schedule is None and jobs["platinum"].after is None
    assert (jobs["silver"].schedule, jobs["gold"].schedule, p.schedules) == (
        "0 * * * *", "0 */6 * * *", {"bronze": "0 * * * *", "reconcile": "15 3 * * *"})  # fmt: skip
    scheduled = " ".join(s for j in p.dbt_jobs if j.schedule for s in j.select)
    listed = dbt("ls", scheduled, retail.wh_uri, None, None, "--resource-type", "model", "--output", "name")
    names = set(re.findall(r"^\s*((?:stg|silver|gold|platinum)_\w+)\s*$", listed, flags=re.M))  # one name a line
    assert {"silver_validated_transactions", "gold_monthly_summary", "gold_category_trends"} <= names
    assert not {n for n in names if n.startswith("platinum_")}, names
    assert retail.platinum_before == 0  # the scheduled build left platinum alone
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.ROOT / "dags" / "gold.py"))
    assert not bag.import_errors
    platinum, gold = bag.dags["platinum_retail"], bag.dags["gold_retail"]
    assert type(platinum.timetable).__name__ == "NullTimetable" and "on demand only" in platinum.doc_md
    assert type(gold.timetable).__name__ == "CronDataIntervalTimetable"


def test_platinum_views_are_deterministic_free_of_personal_data_and_carry_recommendation_features(retail):
    with retail.wh() as wh:
        text = one(wh, "select embedding_text from platinum_retail.platinum_transaction_embeddings "
                       "where transaction_id = 'TEST-CLEAN'")  # fmt: skip
        total, distinct, with_at = wh.execute(
            """select count(*), count(distinct text_hash), count(*) filter (where embedding_text like '%@%')
                 from platinum_retail.platinum_transaction_embeddings"""
        ).fetchone()
        validated = one(wh, "select count(*) from silver_retail.silver_validated_transactions")
        rec = wh.execute(
            """select count(*), count(*) filter (where co_purchase_count > 0), min(popularity_rank_in_category),
                      round(sum(category_unit_share), 4)
                 from platinum_retail.platinum_product_recommendations"""
        ).fetchone()
        kinds = dict(wh.execute("select table_name, table_type from information_schema.tables "
                                "where table_schema = 'platinum_retail'"))  # fmt: skip
    day = (TODAY - timedelta(days=1)).isoformat()
    assert text == (f"Retail transaction TEST-CLEAN on {day} at store STORE-TEST: 2 x Coca-Cola 1.5l (SKU BEV-001, "
                    "category beverages) at PHP 75.00 each, total PHP 150.00.")  # fmt: skip
    assert total == distinct == validated and with_at == 0
    assert rec[0] == 20 and rec[1] >= 15 and rec[2] == 1 and abs(rec[3] - len(CATEGORIES)) < Decimal("0.01"), rec
    assert kinds == {"platinum_transaction_embeddings": "VIEW", "platinum_product_recommendations": "VIEW"}


# --- the document's Monitoring queries --------------------------------------------------------------------


def test_the_documents_monitoring_queries_run_with_only_the_schema_names_changed(retail):
    text = (SQL / "retail_monitoring.sql").read_text()
    queries = dict(re.findall(r"^-- name: (\w+)\n(.*?;)", text, flags=re.M | re.S))
    assert set(queries) == {"row_counts", "freshness"}
    with retail.wh() as wh, retail.src() as src:
        for name, query in queries.items():
            ours = query.replace("FROM bronze.", "FROM bronze_retail.").replace("FROM silver.", "FROM silver_retail.")
            assert ours.count("_retail.") == query.count("FROM bronze.") + query.count("FROM silver.") > 0
            queries[name] = wh.execute(ours).fetchall()
        landed = one(src, "select count(*) from retail.transactions_raw")
        valid = one(wh, "select count(*) from silver_retail.silver_validated_transactions")
    assert queries["row_counts"] == [("bronze_transactions", landed), ("silver_validated_transactions", valid)]
    assert queries["freshness"][0][0] > datetime.now(UTC) - timedelta(hours=1)


# --- the data-quality alert: a rejection spike emails on-call once, then a recovery ----------------------


class Inbox:
    def __init__(self):
        self.messages: list[tuple[list[str], str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        import email
        import email.policy

        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), str(msg["Subject"]), msg.get_body(("plain",)).get_content()))
        return "250 OK"

    def take(self) -> list[tuple[list[str], str, str]]:
        taken, self.messages = self.messages, []
        return taken


def check(wh: psycopg.Connection, now: datetime) -> outbox.Delivery:
    """What the freshness check does for data quality: record incidents and queue their email, then send."""
    with wh.transaction():
        quality.enqueue_news(wh, quality.record(wh, now=now))
    return outbox.drain(wh)


def test_a_rejection_spike_emails_the_products_on_call_once_per_incident_then_a_recovery(retail, monkeypatch):
    from aiosmtpd.controller import Controller

    monkeypatch.setenv("AIRFLOW_VAR_ALERT_EMAILS_RETAIL", "")  # the product file's on-call, no Variable lookup
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=STACK.smtp_port)  # AIRFLOW_CONN_SMTP_DEFAULT's port
    controller.start()
    try:
        with psycopg.connect(retail.wh_uri, autocommit=True) as wh:
            [alert] = quality.declared()
            before = check(wh, BURST_AT - timedelta(hours=1))  # an ordinary morning: no incident
            assert before.sent == [] and inbox.take() == []
            spike = check(wh, BURST_AT + timedelta(hours=1))
            [(to, subject, body)] = inbox.take()
            assert to == ["retail-oncall@example.com"] and spike.sent == [subject]
            assert subject.startswith("[medallion] DATA QUALITY retail:") and "silver_transaction_checks" in subject
            assert "missing_key:store_id (100)" in body and "silver_retail.silver_quarantine" in body
            check(wh, BURST_AT + timedelta(hours=2))  # still spiking: the same incident, no second email
            assert inbox.take() == []
            later = BURST_AT + timedelta(hours=35)  # the next evening: the day's CSV export, the usual mess
            m = quality.measure(wh, alert, later)
            assert m.landed >= alert.min_payloads and m.share <= alert.max_share, m
            check(wh, later)
            [(_, subject, body)] = inbox.take()
            assert subject == "[medallion] RECOVERED data quality retail (silver_transaction_checks)"
            incidents = wh.execute(
                "select landed, rejected, closed_at is not null from ops.quality_incidents where product = 'retail'"
            ).fetchall()
            assert len(incidents) == 1 and incidents[0][1] >= 100 and incidents[0][2], incidents
            check(wh, later + timedelta(minutes=15))
            assert inbox.take() == []
    finally:
        controller.stop()


# --- last: it breaks silver on purpose -------------------------------------------------------------------


def test_a_failing_dbt_test_leaves_its_offending_rows_in_test_failures(retail):
    """`select * from test_failures.<test>` shows what a failed test found (store_failures, set in dbt_project.yml)."""
    with retail.wh() as wh:
        wh.execute(
            """insert into silver_retail.silver_validated_transactions
               select 'TEST-BAD', basket_id, store_id, sku, current_date + 3, product_name, category, quantity,
                      unit_price, -5, currency, extra_keys, landing_id, landed_via, received_at, validated_at
                 from silver_retail.silver_validated_transactions where transaction_id = 'TEST-CLEAN'"""
        )
    with pytest.raises(AssertionError, match="expression_is_true_silver_validated_transactions"):
        dbt("test", "silver_validated_transactions", retail.wh_uri, None, None, *CAUTIOUS)
    with retail.wh() as wh:
        tables = [r[0] for r in wh.execute(
            """select table_name from information_schema.columns
                where table_schema = 'test_failures' and column_name = 'transaction_id'""")]  # fmt: skip
        found = {t for t in tables if one(wh, f'select count(*) from test_failures."{t}" where transaction_id = %s',
                                          "TEST-BAD")}  # fmt: skip
        wh.execute("delete from silver_retail.silver_validated_transactions where transaction_id = 'TEST-BAD'")
    # amount > 0, transaction_date <= current_date, amount = quantity x unit price, unique transaction_id ...
    assert len(found) >= 3 and any("amount" in t for t in found), found
