"""Workarounds for bugs of the pinned Airflow (3.3.2), each named by its upstream issue.

Delete a workaround when the pin moves past the release that fixes it. `python -m medallion.compat
<airflow CLI arguments>` runs the Airflow CLI with them applied (the demo's `dags test` does).
"""

from __future__ import annotations

import functools
import sys


def fix_dag_test_with_deadlines() -> None:
    """dag.test() and `airflow dags test` crash after a successful run of a DAG with a deadline.

    apache/airflow#73428 (open in 3.3.2; fix proposed in apache/airflow#73430). dag.test() builds its
    scheduler DAG by an in-memory serialize/deserialize round trip, so `dag.deadline` holds encoded
    DeadlineAlerts (dicts) instead of the ids of the `deadline_alert` rows the dag-processor writes
    for the real scheduler. When the run succeeds, DagRun.update_state() passes each entry to
    DeadlineAlert.get_by_id() to decide whether to prune the run's deadlines, and the UUID bind
    fails on a dict. Like #73430, an encoded alert is now decoded instead of looked up: get_by_id
    returns an unsaved DeadlineAlert row built from it (update_state only reads its reference).
    Ids take the unchanged path, so the scheduler, which only ever passes ids, behaves as before.
    """
    from airflow.models.deadline_alert import DeadlineAlert

    original = DeadlineAlert.get_by_id  # bound to the class
    if getattr(original, "medallion_fix", False):
        return

    @functools.wraps(original)
    def get_by_id(cls, deadline_alert_id, **kwargs):
        if isinstance(deadline_alert_id, dict):
            data = deadline_alert_id.get("__var", deadline_alert_id)
            return cls(name=data.get("name"), reference=data["reference"], interval=data["interval"],
                       callback_def=data["callback"])  # fmt: skip
        return original(deadline_alert_id, **kwargs)

    get_by_id.medallion_fix = True
    DeadlineAlert.get_by_id = classmethod(get_by_id)


def fix_clear_with_queued_at_deadlines() -> None:
    """Clearing a task of a run whose DAGRUN_QUEUED_AT deadline is still pending crashes.

    Airflow 3.3.2: clear_task_instances() moves the run's queued-at deadlines with
    `timedelta(seconds=deadline_alert.interval)`, but the dag-processor stores that interval encoded
    (`{"__classname__": "datetime.timedelta", "__data__": <seconds>, ...}`, which
    DeadlineAlert.__repr__ itself decodes), so the TypeError fails `airflow tasks clear`, the UI's
    Clear and the REST API for every run of our layer DAGs until its deadline has passed: the
    re-run command of a FAILED email crashed for the first 45 minutes. Same function, the interval
    decoded. Applied in every Airflow process by plugins/airflow_local_settings.py.
    """
    from airflow.models import taskinstance

    if getattr(taskinstance._recalculate_dagrun_queued_at_deadlines, "medallion_fix", False):
        return
    from datetime import timedelta

    from airflow.models.deadline import Deadline, ReferenceModels
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from sqlalchemy import false, select

    def seconds(interval) -> float:
        return float(interval.get("__data__", interval.get("__var", 0))) if isinstance(interval, dict) else interval

    def recalculate(dagrun, new_queued_at, session) -> None:
        results = session.execute(
            select(Deadline, DeadlineAlertModel)
            .join(DeadlineAlertModel, Deadline.deadline_alert_id == DeadlineAlertModel.id)
            .where(
                Deadline.dagrun_id == dagrun.id,
                Deadline.missed == false(),
                DeadlineAlertModel.reference[ReferenceModels.REFERENCE_TYPE_FIELD].as_string()
                == ReferenceModels.DagRunQueuedAtDeadline.__name__,
            )
        ).all()
        for deadline, deadline_alert in results:
            deadline.deadline_time = new_queued_at + timedelta(seconds=seconds(deadline_alert.interval))

    recalculate.medallion_fix = True
    taskinstance._recalculate_dagrun_queued_at_deadlines = recalculate


def apply_all() -> None:
    fix_dag_test_with_deadlines()
    fix_clear_with_queued_at_deadlines()


def main(argv: list[str] | None = None) -> None:
    """The Airflow CLI with the workarounds applied: `python -m medallion.compat dags test bronze_browser_infra ...`."""
    apply_all()
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *(sys.argv[1:] if argv is None else argv)]
    airflow_main()


if __name__ == "__main__":
    main()
