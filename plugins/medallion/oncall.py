"""The on-call callbacks: the FAILED email of every task (after its last retry) and the LATE email of a
run that missed its deadline.

They live here, above `alerts`, `outbox` and `freshness`, because they use all three:
- `alerts` writes the email and groups failures into problems;
- `outbox` keeps the email until it is sent;
- `freshness` says what is stale now.
So `freshness` and `outbox` can import `alerts`, and `alerts` imports none of them: no import cycle.
"""

from __future__ import annotations

import logging
from typing import Any

from medallion import alerts, freshness, outbox

log = logging.getLogger("medallion.alerts")  # the logger it had in alerts.py: same log lines as before


def on_task_failure(context: dict) -> None:
    """on_failure_callback of every task (dagkit.default_args): Airflow calls it once, after the last retry.

    One email per problem (record_failure). A new problem's email lists what is stale now
    (ops.table_freshness) and opens those freshness incidents, so the freshness check does not
    announce them a second time. The email goes through the outbox; with the warehouse down it is
    sent directly (no grouping possible) and, if that fails too, logged in full.
    """
    try:
        failure = alerts.failure_from_context(context)
        notified_by = f"failure of {failure.dag_id}.{failure.label}"
        try:
            with freshness.tracking(notified_by, incidents=False) as change:
                problem = alerts.record_failure(change.wh, failure)
                if problem.news == "failure":
                    stale = freshness.record(change.wh, change.rows, notified_by, close_recovered=False).stale
                    outbox.enqueue(change.wh, alerts.failure_email(failure, stale), "failure")
                elif problem.news == "reminder":
                    outbox.enqueue(change.wh, alerts.reminder_email(failure, problem), "reminder")
                else:
                    log.info("failure %d of a known problem (%s): no email", problem.runs, failure.error)
            if change.delivery.undelivered:
                log.error("alert not sent, kept in ops.alert_outbox for the next freshness check: %s",
                          change.delivery.error)  # fmt: skip
        except freshness.FreshnessUnavailable as exc:
            outbox.send_without_outbox(alerts.failure_email(failure, None, str(exc)), str(exc))
    except Exception:  # never mask the task's own error with the alert's
        log.exception("could not send the failure alert")


def deadline_alert(context: dict, within_minutes: float | None = None) -> str:
    """The LATE email of a missed deadline, through the outbox (kept and retried if SMTP is down)."""
    email = alerts.deadline_email(context, within_minutes)
    if email is None:
        return "no email"
    return "sent to " + ", ".join(outbox.deliver(email, "deadline"))


async def on_deadline_missed(context: dict | None = None, **kwargs: Any) -> str:
    """DeadlineAlert callback (AsyncCallback, dagkit.deadline): the triggerer awaits it with the scheduler's context."""
    import asyncio

    # SMTP, Variable and Connection lookups are blocking: keep them off the triggerer's event loop
    return await asyncio.to_thread(deadline_alert, context or {}, kwargs.get("within_minutes"))
