"""Airflow plugin: an asset-triggered silver or gold run shows the interval it processes as its note.

A task cannot write its run's note in Airflow 3.3 (the execution API has no such call), so the
scheduler does it through a listener, when the run starts. Loaded by Airflow's plugin manager from
plugins/ (the `medallion` package itself is in plugins/.airflowignore).
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)


class RunNotes:
    @hookimpl
    def on_dag_run_running(self, dag_run, msg: str) -> None:
        from medallion import transform

        if dag_run.note:  # never overwrite a person's note
            return
        note = transform.run_note(dag_run.run_type, dag_run.consumed_asset_events)
        if note:
            dag_run.note = note  # the scheduler's session commits it with the state change
            log.info("%s %s: %s", dag_run.dag_id, dag_run.run_id, note)


class MedallionRunNotes(AirflowPlugin):
    name = "medallion_run_notes"
    listeners = [RunNotes()]
