"""The failure callback of every task: it sends the FAILED email, after the last retry.

It lives here, above both `alerts` and `freshness`, because it uses both:
- `alerts` writes the email and groups failures into problems;
- `freshness` says what is stale now.
So `freshness` can import `alerts`, and `alerts` does not import `freshness`: no import cycle.
"""

from __future__ import annotations

import logging

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
