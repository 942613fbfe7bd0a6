"""Parse the DAG folder the way the dag-processor does and report, as JSON, what happened.

Run in a subprocess by tests/test_dags.py with no AIRFLOW_CONN_* variables and a secrets backend
that records and refuses every connection and Variable lookup, so a DAG file that reaches for a
connection at parse time shows up as an import error and a recorded lookup.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from airflow.secrets import BaseSecretsBackend

LOOKUPS = Path(os.environ.get("PARSE_PROBE_LOOKUPS", "/dev/null"))


class RefusingSecrets(BaseSecretsBackend):
    def _refuse(self, kind: str, key: str):
        with LOOKUPS.open("a") as fh:
            fh.write(f"{kind}:{key}\n")
        raise RuntimeError(f"{kind} {key!r} looked up while parsing DAGs")

    def get_conn_value(self, conn_id, team_name=None):
        self._refuse("connection", conn_id)

    def get_connection(self, conn_id, team_name=None):
        self._refuse("connection", conn_id)

    def get_variable(self, key, team_name=None):
        self._refuse("variable", key)


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder = sys.argv[1]
    t0 = time.perf_counter()
    warm = DagBag(dag_folder=folder)  # first pass pays the imports (airflow, cosmos, dbt)
    first = time.perf_counter() - t0
    bag = DagBag(dag_folder=folder)
    dags = {
        dag_id: {
            "file": Path(dag.fileloc).name,
            "owner": dag.owner,
            "tags": sorted(dag.tags),
            "doc_md": dag.doc_md or "",
            "tasks": len(dag.tasks),
            "retries": sorted({t.retries for t in dag.tasks}),
            "catchup": dag.catchup,
            "timetable": type(dag.timetable).__name__,
            "params": sorted(dag.params.keys()),
            "on_failure_callback": bool(dag.default_args.get("on_failure_callback")),
            "deadlines": [
                {
                    "reference": type(d.reference).__name__,
                    "minutes": d.interval.total_seconds() / 60,
                    "callback": getattr(d.callback, "path", None),
                    "kwargs": getattr(d.callback, "kwargs", None),
                }
                for d in (dag.deadline if isinstance(dag.deadline, list) else [dag.deadline] if dag.deadline else [])
            ],
        }
        for dag_id, dag in bag.dags.items()
    }
    print(
        json.dumps(
            {
                "import_errors": {**warm.import_errors, **bag.import_errors},
                "dags": dags,
                "first_pass_s": first,
                "file_seconds": {
                    Path(s.file).name: s.duration.total_seconds()
                    if hasattr(s.duration, "total_seconds")
                    else s.duration
                    for s in bag.dagbag_stats
                },
            }
        )
    )


if __name__ == "__main__":
    main()
