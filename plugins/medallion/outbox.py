"""Durable alert delivery: every alert is a row of ops.alert_outbox_messages before it is an email.

An alert is written in the same transaction as the incident or problem it announces, then sent;
a send that fails keeps the row with its error and is retried with backoff by every freshness
check (the `freshness` DAG every 15 minutes, and each bronze run's check), so an SMTP outage
delays alerts but never loses one. Drains lock each row while sending it (`for update skip
locked`): two checks at once never send the same alert twice. Only when the warehouse itself is
down is an alert sent without the outbox, and if that fails too, logged in full in the task log.
What is waiting: `select * from ops.alert_outbox` and `ops.alert_outbox_status`.
It sits above `alerts` (which writes the emails and sends one, and never imports this module).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from medallion import alerts, config, connections
from medallion.alerts import Email
from medallion.config import OPS_SCHEMA

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Retry delay after the n-th failed attempt: 1, 2, 4 ... minutes, at most an hour. A check runs
# every 15 minutes, so in practice an alert is retried by each check once SMTP has been down a while.
FIRST_RETRY = timedelta(minutes=1)
MAX_RETRY = timedelta(hours=1)
# Sent alerts are kept this long (what was sent when), then deleted by a drain.
KEEP_SENT = timedelta(days=90)


@dataclass
class Delivery:
    """What one drain did."""

    sent: list[str] = field(default_factory=list)  # subjects
    failed: list[str] = field(default_factory=list)  # tried now, failed
    waiting: int = 0  # alerts that failed before and wait for their retry (failed now included)
    error: str | None = None  # the last send error
    recipients: list[str] = field(default_factory=list)  # of the last alert sent

    @property
    def undelivered(self) -> bool:
        return bool(self.failed or self.waiting)


class AlertsUndelivered(RuntimeError):
    """Alerts could not be emailed; they are kept in the outbox and retried by the next check."""


def enqueue(wh: psycopg.Connection, email: Email, kind: str) -> int:
    """Keep an alert in the outbox (in the caller's transaction); returns its message_id."""
    return wh.execute(
        f"""insert into {OPS_SCHEMA}.alert_outbox_messages (kind, subject, text_body, html_body, product)
            values (%s, %s, %s, %s, %s) returning message_id""",
        (kind, email.subject, email.text, email.html, email.product),
    ).fetchone()[0]


def drain(wh: psycopg.Connection, only: int | None = None) -> Delivery:
    """Send every alert that is due, oldest first, each in its own transaction (commits).

    Stops at the first send that fails (SMTP down: the others would fail alike, and each failure
    may take a timeout): that alert is kept with its error and retried after its backoff.
    `only`: send just that message (delivering one alert without waiting for older ones).
    """
    done = Delivery()
    with wh.transaction():
        wh.execute(f"delete from {OPS_SCHEMA}.alert_outbox_messages where sent_at < now() - %s", (KEEP_SENT,))
    while True:
        with wh.transaction():
            row = wh.execute(
                f"""select message_id, subject, text_body, html_body, attempts, product
                      from {OPS_SCHEMA}.alert_outbox_messages
                     where sent_at is null and next_attempt_at <= now()
                       and (%(only)s::bigint is null or message_id = %(only)s)
                     order by created_at, message_id
                     limit 1
                       for update skip locked""",
                {"only": only},
            ).fetchone()
            if row is None:
                return _waiting(wh, done)
            message_id, subject, text, html, attempts, product = row
            try:
                to = alerts.send(Email(subject=subject, text=text, html=html, product=product))
            except Exception as exc:  # SMTP down, refused, no recipients: keep it and say why
                done.failed.append(subject)
                done.error = alerts.first_line(exc)
                delay = min(FIRST_RETRY * 2**attempts, MAX_RETRY)
                wh.execute(
                    f"""update {OPS_SCHEMA}.alert_outbox_messages
                           set attempts = attempts + 1, last_attempt_at = now(), last_error = %s,
                               next_attempt_at = now() + %s
                         where message_id = %s""",
                    (done.error, delay, message_id),
                )
                log.warning("alert not sent, kept in %s.alert_outbox (attempt %d, retried after %s): %s: %s",
                            OPS_SCHEMA, attempts + 1, delay, subject, done.error)  # fmt: skip
            else:
                wh.execute(
                    f"""update {OPS_SCHEMA}.alert_outbox_messages
                           set attempts = attempts + 1, last_attempt_at = now(), last_error = null,
                               sent_at = now(), sent_to = %s
                         where message_id = %s""",
                    (to, message_id),
                )
                done.sent.append(subject)
                done.recipients = to
        if done.failed:  # the others would fail alike: they wait for the next check
            return _waiting(wh, done)


def _waiting(wh: psycopg.Connection, done: Delivery) -> Delivery:
    """Count the alerts a send already failed for (they wait for their retry), with the newest error."""
    with wh.transaction():
        done.waiting, error = wh.execute(
            f"""select count(*), (array_agg(last_error order by last_attempt_at desc))[1]
                  from {OPS_SCHEMA}.alert_outbox_messages
                 where sent_at is null and attempts > 0"""
        ).fetchone()
    done.error = done.error or error
    return done


def deliver(email: Email, kind: str) -> list[str]:
    """Send one alert through the outbox on a connection of its own; returns the recipients.

    Raises AlertsUndelivered when it could not be sent now (it is kept and retried). When the
    warehouse cannot be reached, sends it directly, and logs it in full if that fails too.
    """
    try:
        with connections.connect_airflow(config.WAREHOUSE_CONN_ID, "medallion-alerts") as wh:
            from medallion import warehouse

            with wh.transaction():
                warehouse.migrate(wh)
                message_id = enqueue(wh, email, kind)
            done = drain(wh, only=message_id)
            sent = bool(done.sent)
    except Exception as exc:  # the warehouse is down (or its ops schema broken): no outbox
        import psycopg

        if not isinstance(exc, (psycopg.Error, connections.ConnectionFailed, config.ConfigError)):
            raise
        return send_without_outbox(email, f"the outbox is unavailable ({type(exc).__name__}: {exc})")
    if not sent:
        raise AlertsUndelivered(f"alert not sent, kept in {OPS_SCHEMA}.alert_outbox and retried by the next "
                                f"freshness check: {done.error}")  # fmt: skip
    return done.recipients


def send_without_outbox(email: Email, why: str) -> list[str]:
    """The last resort: send now; if that fails too, write the whole alert into the task log."""
    log.warning("%s: sending without it: %s", why, email.subject)
    try:
        return alerts.send(email)
    except Exception as exc:
        try:
            to = ", ".join(alerts.recipients(email.product)) or "(no recipients configured)"
        except Exception:
            to = "(recipients unreadable)"
        log.error(
            "ALERT NOT SENT (%s; SMTP: %s). The whole alert follows, for whoever reads this log:\n"
            "To: %s\nSubject: %s\n\n%s", why, alerts.first_line(exc), to, email.subject, email.text,
        )  # fmt: skip
        raise AlertsUndelivered(f"alert not sent and not kept ({why}); logged in full: {email.subject}") from exc
