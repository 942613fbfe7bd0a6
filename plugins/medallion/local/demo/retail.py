"""Deterministic demo data for the retail (Scout Retail) Supabase database (schema `retail`).

`seed` lands `days` of history ending at `as_of` as JSONB payloads in the two landing tables;
`advance` moves the clock on: the next hours' sales arrive by webhook, the day's CSV export at the
end of each day. The same (seed, as_of, scale) always produces the same rows.

The mess real feeds have, on purpose (what silver's rules in include/dbt/models/core/retail exist for),
each at a small rate (~4 % of transaction payloads are rejected in all):
  transactions_raw  missing keys; extra keys (customer_email, loyalty_card, pos_version); numbers sent
                    as strings ("2", "49.50"), some not numbers at all ("two"); quantity 0 and
                    negative amounts; dates in the future, in two formats (ISO from webhooks and
                    Drive, MM/DD/YYYY from the POS CSV export) and impossible ones (13/45/2026);
                    unknown categories, SKUs and currencies; categories in any casing ("Personal Care",
                    " DRINKS"); an amount that disagrees with quantity x unit price; a transaction
                    delivered twice (a webhook retry: same payload, same request id); a payload that
                    is not an object (a truncated line's string, an array)
  products_raw      the same SKU re-sent with different spelling, casing and whitespace; an unknown
                    category; a price as a string; a payload without a SKU; one that is not an object

Scale 1 = ~16k transaction payloads over 400 days (so gold has a year-over-year comparison and a
year boundary); canned goods launch 100 days before `as_of` (a category new in the prior period).

    python -m medallion.local.demo.retail --dsn postgresql://... seed [--scale 1]
    python -m medallion.local.demo.retail --dsn postgresql://... advance --hours 1
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, date, datetime, timedelta

import psycopg

from medallion.local import demo

PRODUCT = "retail"
TABLES = ["transactions_raw", "products_raw"]
DEFAULT_SEED = 11
DAYS = 400
PER_DAY = 40  # transaction lines a day at scale 1
LAUNCH_DAYS_BEFORE = 100  # canned goods are sold from as_of - 100 days
STORES = ["STORE-MNL-01", "STORE-MNL-02", "STORE-CEB-01", "STORE-DVO-01"]
# sku, name, category, brand, price (PHP)
CATALOGUE = [
    ("BEV-001", "Coca-Cola 1.5L", "beverages", "Coca-Cola", 75.00),
    ("BEV-002", "Nestea Iced Tea 1L", "beverages", "Nestle", 55.00),
    ("BEV-003", "Kopiko Brown Coffee 10s", "beverages", "Kopiko", 89.50),
    ("BEV-004", "Absolute Distilled Water 1L", "beverages", "Absolute", 25.00),
    ("SNK-001", "Piattos Cheese 85g", "snacks", "Jack n Jill", 38.00),
    ("SNK-002", "Nova Country Cheddar 78g", "snacks", "Jack n Jill", 36.00),
    ("SNK-003", "Skyflakes Crackers 10s", "snacks", "Monde", 62.00),
    ("SNK-004", "Chippy Barbecue 110g", "snacks", "Jack n Jill", 34.50),
    ("PRC-001", "Safeguard Soap 135g", "personal_care", "Safeguard", 48.00),
    ("PRC-002", "Colgate Toothpaste 150g", "personal_care", "Colgate", 112.00),
    ("PRC-003", "Head and Shoulders Shampoo 170ml", "personal_care", "P&G", 185.00),
    ("HSH-001", "Joy Dishwashing Liquid 250ml", "household", "Joy", 59.00),
    ("HSH-002", "Tide Powder 1kg", "household", "Tide", 168.00),
    ("HSH-003", "Zonrox Bleach 1L", "household", "Zonrox", 52.00),
    ("DRY-001", "Alaska Evaporada 370ml", "dairy", "Alaska", 36.00),
    ("DRY-002", "Bear Brand Powdered Milk 320g", "dairy", "Nestle", 145.00),
    ("DRY-003", "Eden Cheese 165g", "dairy", "Kraft", 58.00),
    ("CAN-001", "Century Tuna Flakes 180g", "canned_goods", "Century", 42.00),
    ("CAN-002", "Argentina Corned Beef 150g", "canned_goods", "Argentina", 45.00),
    ("CAN-003", "Ligo Sardines 155g", "canned_goods", "Ligo", 24.00),
]
CATEGORY_SPELLINGS = {  # how feeds spell a category (silver folds them all to the canonical name)
    "beverages": ["beverages", "Beverages", " BEVERAGES ", "drinks"],
    "snacks": ["snacks", "Snacks", "snack"],
    "personal_care": ["personal_care", "Personal Care", "personal-care"],
    "household": ["household", "Household"],
    "dairy": ["dairy", "Dairy", " dairy"],
    "canned_goods": ["canned_goods", "Canned Goods", "canned"],
}
# (rule it breaks, weight per 1000 payloads); the rest are clean
MESS = [
    ("missing_key", 8),
    ("not_a_number", 3),
    ("not_positive", 5),
    ("future_date", 3),
    ("bad_date", 3),
    ("unknown_category", 3),
    ("unknown_product", 2),
    ("unknown_currency", 2),
    ("amount_mismatch", 2),
    ("not_an_object", 2),
]
DUPLICATE_PER_1000 = 20  # webhook retries: the same payload again


def _launch(as_of: datetime) -> date:
    return (as_of - timedelta(days=LAUNCH_DAYS_BEFORE)).date()


def _money(value: float) -> float:
    return round(value + 1e-9, 2)


class _Feed:
    """One generation pass: a random stream and the rows to land."""

    def __init__(self, rng: random.Random, counter: int):
        self.rng, self.counter = rng, counter
        self.transactions: list[tuple] = []
        self.products: list[tuple] = []

    def catalogue_upload(self, at: datetime, skus: list[tuple], file_name: str) -> None:
        for line, (sku, name, category, brand, price) in enumerate(skus, 2):
            payload = {"sku": sku, "name": name, "category": category, "brand": brand, "unit_price": price}
            self.products.append((json.dumps(payload), "csv", file_name, line, None, at))

    def catalogue_mess(self, at: datetime) -> None:
        """Re-spelled re-sends of existing SKUs, and payloads silver must quarantine."""
        rng = self.rng
        for sku, name, category, brand, price in rng.sample(CATALOGUE[:17], 5):
            variant = rng.choice([f"  {name.lower()} ", name.upper(), name.replace(" ", "  "), f"{name} "])
            payload = {"sku": f" {sku.lower()}", "name": variant, "category": rng.choice(CATEGORY_SPELLINGS[category]),
                       "brand": brand, "unit_price": str(price)}  # fmt: skip
            self._product_webhook(payload, at)
        self._product_webhook({"sku": "TOY-001", "name": "Yo-yo", "category": "Toys", "unit_price": 15}, at)
        self._product_webhook({"name": "Mystery item", "category": "snacks", "unit_price": 10}, at)
        self._product_webhook({"sku": "SNK-009", "name": "Free sample", "category": "snacks", "unit_price": "free"}, at)
        self._product_webhook(["SNK-010", "Broken row"], at)

    def _product_webhook(self, payload, at: datetime) -> None:
        self.products.append((json.dumps(payload), "webhook", None, None, self._request_id(), at))

    def _request_id(self) -> str:
        return f"req_{self.rng.getrandbits(48):012x}"

    def day(self, day: date, lines: int, products: list[tuple], received_from: datetime, received_until: datetime):
        """One day's sales: baskets of 1-4 lines, by webhook during the day, the rest in one CSV export."""
        rng, csv_lines = self.rng, []
        made = 0
        while made < lines:
            store = rng.choice(STORES)
            basket = f"B{self.counter:08d}"
            for product in rng.sample(products, min(len(products), rng.choice([1, 1, 2, 2, 3, 4]))):
                self.counter += 1
                made += 1
                payload = self._transaction(f"T{self.counter:08d}", day, store, basket, product)
                if rng.random() < 0.55:
                    csv_lines.append(payload)
                else:
                    at = received_from + (received_until - received_from) * rng.random()
                    self._deliver(payload, "webhook" if rng.random() < 0.8 else "drive", day, at)
        export_at = received_until - timedelta(seconds=rng.uniform(1, 300))
        file_name = f"pos_export_{day:%Y%m%d}.csv"
        for line, payload in enumerate(csv_lines, 2):
            self._deliver(payload, "csv", day, export_at, file_name, line)

    def _deliver(self, payload, via: str, day: date, at: datetime, file_name: str | None = None,
                 line: int | None = None) -> None:  # fmt: skip
        if via == "csv" and isinstance(payload, dict) and payload.get("transaction_date") == day.isoformat():
            payload["transaction_date"] = f"{day:%m/%d/%Y}"  # the POS export writes US dates
        request = self._request_id() if via == "webhook" else None
        drive_file = f"drive_sales_{day:%Y%m}.gsheet" if via == "drive" else file_name
        row = (json.dumps(payload), via, drive_file, line, request, at)
        self.transactions.append(row)
        if via == "webhook" and self.rng.random() * 1000 < DUPLICATE_PER_1000:  # a retry: same body, same request id
            self.transactions.append((*row[:5], at + timedelta(seconds=self.rng.uniform(5, 90))))

    def _transaction(self, tid: str, day: date, store: str, basket: str, product: tuple):
        rng = self.rng
        sku, name, category, _brand, price = product
        quantity = rng.choice([1, 1, 1, 2, 2, 3, 4, 6])
        payload: dict = {"transaction_id": tid, "transaction_date": day.isoformat(), "sku": sku, "product_name": name,
                         "quantity": quantity, "unit_price": price, "currency": "PHP", "store_id": store,
                         "basket_id": basket}  # fmt: skip
        if rng.random() < 0.7:
            payload["amount"] = _money(quantity * price)
        if rng.random() < 0.8:
            payload["category"] = rng.choice(CATEGORY_SPELLINGS[category])
        if rng.random() < 0.1:  # numbers as strings (valid: silver reads them)
            payload["quantity"], payload["unit_price"] = str(quantity), f"{price:.2f}"
        if rng.random() < 0.1:
            payload["currency"] = rng.choice(["php", " PHP", None])
            if payload["currency"] is None:
                del payload["currency"]
        if rng.random() < 0.05:  # extra keys: personal data silver never copies
            payload["customer_email"] = f"shopper{rng.randint(1, 999)}@example.com"
            payload["loyalty_card"] = f"LC-{rng.randint(100000, 999999)}"
        if rng.random() < 0.05:
            payload["pos_version"] = "4.2.1"
        roll, acc = rng.random() * 1000, 0
        for rule, weight in MESS:
            acc += weight
            if roll < acc:
                return self._break(payload, rule, day)
        return payload

    def _break(self, payload: dict, rule: str, day: date):
        rng = self.rng
        if rule == "missing_key":
            del payload[rng.choice(["transaction_id", "sku", "quantity", "unit_price", "store_id", "transaction_date"])]
        elif rule == "not_a_number":
            payload[rng.choice(["quantity", "unit_price"])] = rng.choice(["two", "n/a", "12,50"])
        elif rule == "not_positive":
            if rng.random() < 0.5:
                payload["quantity"] = 0
                payload.pop("amount", None)
            else:
                payload["amount"] = -abs(float(payload["unit_price"]))  # a refund sent as a sale
                payload["quantity"] = -1
        elif rule == "future_date":
            payload["transaction_date"] = (day + timedelta(days=rng.choice([3650, 36500]))).isoformat()  # 2036, 2126
        elif rule == "bad_date":
            payload["transaction_date"] = rng.choice(["13/45/2026", "2026-02-30", "yesterday"])
        elif rule == "unknown_category":
            payload["category"] = rng.choice(["Toys", "electronics", "MISC"])
        elif rule == "unknown_product":
            payload["sku"] = "ZZZ-404"
        elif rule == "unknown_currency":
            payload["currency"] = "EUR"
        elif rule == "amount_mismatch":
            payload["amount"] = _money(float(payload["unit_price"]) * int(payload["quantity"]) + 10)
        elif rule == "not_an_object":
            return rng.choice([f"ERROR: truncated line {payload['transaction_id']}", [payload["transaction_id"]]])
        return payload

    def write(self, conn: psycopg.Connection) -> dict[str, int]:
        cols = "(payload, source, file_name, line_number, request_id, received_at)"
        for table, rows in (("products_raw", self.products), ("transactions_raw", self.transactions)):
            rows.sort(key=lambda r: r[5])
            with conn.cursor().copy(f"copy retail.{table} {cols} from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
        return {"transactions_raw": len(self.transactions), "products_raw": len(self.products)}


def _sold(day: date, as_of: datetime) -> list[tuple]:
    return [p for p in CATALOGUE if p[2] != "canned_goods" or day >= _launch(as_of)]


def _counter(conn: psycopg.Connection) -> int:
    row = conn.execute("select coalesce(max(counter), 0) from demo.retail_counter").fetchone()
    return row[0]


def seed(conn: psycopg.Connection, as_of: datetime, scale: float = 1.0, seed: int = DEFAULT_SEED,
         days: int = DAYS) -> dict[str, int]:  # fmt: skip
    """Fill an empty source with `days` of history ending at `as_of`. Returns payloads per table."""
    demo.apply_migrations(conn, PRODUCT)
    conn.execute("create table if not exists demo.retail_counter (counter bigint not null)")
    if conn.execute("select exists (select from retail.transactions_raw)").fetchone()[0]:
        raise RuntimeError("retail source already seeded: drop its tables first or use `advance`")
    rng = random.Random(seed)
    feed = _Feed(rng, 0)
    begin = (as_of - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    launch = _launch(as_of)
    feed.catalogue_upload(begin - timedelta(hours=2), [p for p in CATALOGUE if p[2] != "canned_goods"],
                          f"catalogue_{begin:%Y%m%d}.csv")  # fmt: skip
    canned = [p for p in CATALOGUE if p[2] == "canned_goods"]  # the new category's catalogue, just before launch
    feed.catalogue_upload(datetime.combine(launch, datetime.min.time(), UTC) - timedelta(hours=3), canned,
                          f"catalogue_{launch:%Y%m%d}.csv")  # fmt: skip
    feed.catalogue_mess(as_of - timedelta(days=days // 2))
    per_day = max(4, round(PER_DAY * scale))
    day = begin.date()
    while day < as_of.date():
        start = datetime.combine(day, datetime.min.time(), UTC)
        # weekends sell more; a slow trend up over the year
        lines = round(per_day * (1.3 if day.weekday() >= 5 else 1.0) * (0.8 + 0.4 * (day - begin.date()).days / days))
        feed.day(day, lines, _sold(day, as_of), start + timedelta(hours=8), min(start + timedelta(hours=23), as_of))
        day += timedelta(days=1)
    counts = feed.write(conn)
    conn.execute("insert into demo.retail_counter values (%s)", (feed.counter,))
    conn.execute("delete from demo.clock")
    conn.execute("insert into demo.clock (as_of) values (%s)", (as_of,))
    conn.commit()
    return counts


def advance(conn: psycopg.Connection, hours: float = 1.0, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Move the clock forward `hours`: webhook sales of those hours (its day's lines are delivered as
    they happen; no CSV export mid-day), with the usual mess."""
    t0 = clock(conn)
    if t0 is None:
        raise RuntimeError("retail source is not seeded yet: run `seed` first")
    t1 = t0 + timedelta(hours=hours)
    rng = random.Random(f"{seed}:{t1.isoformat()}")
    feed = _Feed(rng, _counter(conn))
    lines = max(1, round(PER_DAY * hours / 24 * 1.2))
    feed.day(t0.date(), lines, _sold(t0.date(), t0), t0, t1 - timedelta(seconds=1))
    # an hour's webhooks only: move the day's CSV export lines to webhooks landing in the hour
    feed.transactions = [
        (p, "webhook", None, None, r or f"req_{rng.getrandbits(48):012x}", a) if s == "csv" else (p, s, f, ln, r, a)
        for p, s, f, ln, r, a in feed.transactions
    ]
    counts = feed.write(conn)
    conn.execute("update demo.retail_counter set counter = %s", (feed.counter,))
    conn.execute("update demo.clock set as_of = %s", (t1,))
    conn.commit()
    return counts


def clock(conn: psycopg.Connection) -> datetime | None:
    if conn.execute("select to_regclass('demo.clock')").fetchone()[0] is None:
        return None
    row = conn.execute("select as_of from demo.clock").fetchone()
    return row[0] if row else None


def counts(wh: psycopg.Connection) -> dict[str, int]:
    """Transaction payloads landed in bronze and what silver made of them (landed = valid + quarantined + duplicate)."""
    landed = wh.execute("select count(*) from stg_retail.stg_retail__bronze_transactions").fetchone()[0]
    by_status = dict(wh.execute("select status, count(*) from silver_retail.silver_transaction_checks group by 1"))
    return {"landed": landed, **{s: by_status.get(s, 0) for s in ("valid", "quarantined", "duplicate")}}


def gold_report(wh: psycopg.Connection) -> str:
    """What `make demo` prints: the payload counts, the top rejection reasons and a few gold trends."""
    c = counts(wh)
    lines = [f"transaction payloads: landed {c['landed']:,} = valid {c['valid']:,} + quarantined "
             f"{c['quarantined']:,} + duplicates {c['duplicate']:,}"]  # fmt: skip
    reasons = wh.execute(
        """select reason, count(*) from silver_retail.silver_quarantine, unnest(reasons) as reason
            group by 1 order by 2 desc, 1 limit 4"""
    ).fetchall()
    lines.append("top rejection reasons: " + ", ".join(f"{r} {n}" for r, n in reasons))
    lines.append(f"\n{'month':8} {'category':14} {'revenue':>12} {'MoM':>8} {'YoY':>8}")
    for month, category, revenue, mom, yoy in wh.execute(
        """select month, category, revenue, mom_growth, yoy_growth from gold_retail.gold_monthly_summary
            where month = (select max(month) - interval '1 month' from gold_retail.gold_monthly_summary)
            order by revenue desc limit 3"""
    ):
        pct = lambda g: f"{g * 100:+.1f}%" if g is not None else "n/a"  # noqa: E731
        lines.append(f"{month:%Y-%m}  {category:14} {revenue:>12,.2f} {pct(mom):>8} {pct(yoy):>8}")
    anomalies = wh.execute(
        "select count(*), max(week_start) from gold_retail.gold_category_trends where is_anomaly"
    ).fetchone()
    lines.append(f"weekly anomalies flagged (|z| >= 3 over 8 weeks): {anomalies[0]}"
                 + (f", latest week of {anomalies[1]}" if anomalies[1] else ""))  # fmt: skip
    return "\n".join(lines)


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True, help="retail source database URI (may create tables)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--scale", type=float, default=1.0, help=f"1 = ~{PER_DAY} transaction lines a day over {DAYS} days")
    s.add_argument("--as-of", type=datetime.fromisoformat, default=None, help="end of history (default: this hour)")
    a = sub.add_parser("advance")
    a.add_argument("--hours", type=float, default=1.0)
    args = ap.parse_args(argv)
    with psycopg.connect(args.dsn) as conn:
        if args.cmd == "seed":
            result = seed(conn, args.as_of or floor_hour(datetime.now(UTC)), scale=args.scale)
        else:
            result = advance(conn, hours=args.hours)
    for table, n in result.items():
        print(f"{table:20} {n:>10,}")


if __name__ == "__main__":
    main()
