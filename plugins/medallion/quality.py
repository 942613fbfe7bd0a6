"""Data-quality alerts: a spike of rejected payloads in a validated silver model emails its product's on-call.

A dbt model that judges landed payloads (one row each, with `status` = 'quarantined' for a rejected
one, `reasons` and `received_at`) declares the alert in its YAML meta, e.g. retail's
silver_transaction_checks:

    meta:
      rejection_alert:
        max_rejected_share: 0.2              # a spike: more than 20 % of the window's payloads rejected
        window: {count: 6, period: hour}     # payloads received in the last 6 hours
        min_payloads: 20                     # fewer landed: too few to judge (no open, no close)

Every freshness check (the `freshness` DAG, each bronze run's check) measures each declared model and
keeps ops.quality_incidents like stale-table incidents: one email when a spike starts, one when the
share is back under the threshold (the outbox delivers both, medallion.outbox). A model not built
yet is skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

from medallion import config
from medallion.config import OPS_SCHEMA, SQL_DIR, ConfigError

log = logging.getLogger(__name__)

WINDOW_SQL = SQL_DIR / "quality" / "rejection_window.sql"


@dataclass(frozen=True)
class RejectionAlert:
    product: str
    schema: str
    table: str
    max_share: Decimal
    window: timedelta
    min_payloads: int
    declared_at: str

    @property
    def model(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class Measure:
    window_start: datetime
    window_end: datetime
    landed: int
    rejected: int
    top_reasons: list[str]

    @property
    def share(self) -> Decimal:
        return Decimal(self.rejected) / self.landed if self.landed else Decimal(0)


@dataclass
class QualityNews:
    opened: list[tuple[RejectionAlert, Measure]] = field(default_factory=list)
    recovered: list[tuple[RejectionAlert, Measure, datetime]] = field(default_factory=list)  # with opened_at


def declared(manifest: Path | None = None) -> list[RejectionAlert]:
    """Every model whose meta declares `rejection_alert`, from the dbt manifest; ConfigError names file:line."""
    path = manifest or config.DBT_MANIFEST
    try:
        nodes = json.loads(path.read_text())["nodes"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: dbt manifest not readable ({exc}); build it with `make manifest`") from None
    alerts = []
    for node in sorted(nodes.values(), key=lambda n: n["unique_id"]):
        meta = (node.get("config") or {}).get("meta") or {}
        spec = meta.get("rejection_alert")
        if node.get("resource_type") != "model" or not spec:
            continue
        where = f"{node.get('patch_path', '').split('://')[-1] or node['original_file_path']}: model {node['name']}"
        try:
            window = config._duration(spec["window"], where)  # {count: N, period: hour}
            alert = RejectionAlert(
                product=node["fqn"][2],  # models/<layer>/<product>/<model>
                schema=node["schema"],
                table=node.get("alias") or node["name"],
                max_share=Decimal(str(spec["max_rejected_share"])),
                window=window,
                min_payloads=int(spec.get("min_payloads", 1)),
                declared_at=where,
            )
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise ConfigError(f"{where}: rejection_alert needs max_rejected_share (0..1), window {{count: N, "
                              f"period: hour}} and optionally min_payloads, got {spec!r}") from None  # fmt: skip
        if not 0 < alert.max_share < 1 or window is None:
            raise ConfigError(f"{where}: rejection_alert.max_rejected_share must be between 0 and 1, got {spec!r}")
        alerts.append(alert)
    return alerts


def measure(wh: psycopg.Connection, alert: RejectionAlert, now: datetime) -> Measure | None:
    """The window ending `now` of one model; None when the model is not built yet."""
    if wh.execute("select to_regclass(%s)", (alert.model,)).fetchone()[0] is None:
        return None
    start = now - alert.window
    query = sql.SQL(WINDOW_SQL.read_text()).format(checks=sql.Identifier(alert.schema, alert.table))
    landed, rejected, top = wh.execute(query, {"window_start": start, "window_end": now}).fetchone()
    return Measure(start, now, landed, rejected, list(top))


def record(
    wh: psycopg.Connection, now: datetime | None = None, alerts: list[RejectionAlert] | None = None
) -> QualityNews:
    """Open and close ops.quality_incidents to match each declared model's window (caller's transaction)."""
    now = now or datetime.now(UTC)
    news = QualityNews()
    for alert in declared() if alerts is None else alerts:
        m = measure(wh, alert, now)
        if m is None or m.landed < alert.min_payloads:
            continue  # not built, or too few payloads to call it either way: the incident stays as it is
        spike = m.share > alert.max_share
        row = wh.execute(
            f"""select incident_id, opened_at from {OPS_SCHEMA}.quality_incidents
                 where product = %s and model = %s and closed_at is null for update""",
            (alert.product, alert.model),
        ).fetchone()
        if row is None and spike:
            wh.execute(
                f"""insert into {OPS_SCHEMA}.quality_incidents (product, model, window_start, window_end, landed,
                        rejected, max_share, top_reasons, last_seen_share, last_checked_at)
                    values (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())""",
                (alert.product, alert.model, m.window_start, m.window_end, m.landed, m.rejected, alert.max_share,
                 m.top_reasons, m.share),
            )  # fmt: skip
            news.opened.append((alert, m))
        elif row is not None:
            wh.execute(
                f"""update {OPS_SCHEMA}.quality_incidents
                       set last_seen_share = %s, last_checked_at = now(),
                           closed_at = case when %s then null else now() end
                     where incident_id = %s""",
                (m.share, spike, row[0]),
            )
            if not spike:
                news.recovered.append((alert, m, row[1]))
    return news


def _pct(share: Decimal) -> str:
    return f"{float(share) * 100:.1f} %"


def spike_email(alert: RejectionAlert, m: Measure):
    from medallion import alerts

    doc = alerts.Doc(lead=(f"{alert.product}: {m.rejected} of {m.landed} payloads received in the last "
                           f"{alerts.span(alert.window)} were rejected ({_pct(m.share)}, alert above "
                           f"{_pct(alert.max_share)})."))  # fmt: skip
    doc.facts = [
        ("Model", alert.model),
        ("Window", alerts.interval(m.window_start, m.window_end)),
        ("Declared", alert.declared_at),
    ]
    doc.sections.append(("Top reasons (rule:key)", [alerts.Item(r) for r in m.top_reasons]))
    quarantine = f"{alert.schema}.silver_quarantine"
    doc.steps = [
        "Nothing is lost: every rejected payload is kept with its reasons. See which feed sends them "
        "(landed_via, file_name, request_id):",
        "Fix the feed (or the rule, if the feed is right) and resend; resent payloads are judged again by the "
        "next silver run.",
    ]
    doc.commands = [
        f"select landed_via, file_name, rules, count(*) from {quarantine} where received_at >= "
        f"'{m.window_start:%Y-%m-%d %H:%M}+00' group by 1, 2, 3 order by 4 desc;"
    ]
    doc.footer = "Sent once per incident, and once when the share is back under the threshold. " \
                 f"State: select * from {OPS_SCHEMA}.quality_incidents;"  # fmt: skip
    return doc.email(f"{alerts.PREFIX} DATA QUALITY {alert.product}: {_pct(m.share)} of payloads rejected "
                     f"({alert.table})", alert.product)  # fmt: skip


def recovered_email(alert: RejectionAlert, m: Measure, opened_at: datetime):
    from medallion import alerts

    doc = alerts.Doc(lead=(f"{alert.product}: rejections are back to normal: {m.rejected} of {m.landed} payloads "
                           f"in the last {alerts.span(alert.window)} ({_pct(m.share)}, threshold "
                           f"{_pct(alert.max_share)})."))  # fmt: skip
    doc.facts = [("Model", alert.model), ("Spike seen since", alerts.when(opened_at))]
    doc.footer = f"State: select * from {OPS_SCHEMA}.quality_incidents;"
    return doc.email(f"{alerts.PREFIX} RECOVERED data quality {alert.product} ({alert.table})", alert.product)


def enqueue_news(wh: psycopg.Connection, news: QualityNews) -> None:
    """Keep the emails in the outbox, in the caller's transaction (with the incident changes)."""
    from medallion import outbox

    for alert, m in news.opened:
        outbox.enqueue(wh, spike_email(alert, m), "quality")
    for alert, m, opened_at in news.recovered:
        outbox.enqueue(wh, recovered_email(alert, m, opened_at), "quality")
