"""Airflow's plugin loader must not import the medallion package's modules a second time.

Airflow imports every `.py` under `plugins/` as a top-level module (`config`, `transform`, ...)
to look for AirflowPlugin classes, beside the real `medallion.*` modules: module-level side effects
(the Cosmos patch in `transform`) ran twice and 15 shadow copies sat in `sys.modules`.
`plugins/.airflowignore` keeps the package out of that scan; the package still imports normally.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

PROBE = """
import json, sys
from airflow import plugins_manager
from airflow.sdk import plugins_manager as sdk_plugins_manager
plugins_manager._get_plugins()
sdk_plugins_manager._get_plugins()
import medallion.config
plugins = sys.argv[1]
package = plugins + "/medallion/"
shadows = sorted(
    name for name, mod in list(sys.modules.items())
    if (getattr(mod, "__file__", None) or "").startswith(package) and not name.startswith("medallion.")
    and name != "medallion"
)
loaded = sorted(p.name for p in plugins_manager._get_plugins()[0])
print(json.dumps({"shadows": shadows, "plugins": loaded}))
"""


def test_the_plugin_loader_imports_no_module_of_the_package(tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(PLUGINS),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(PLUGINS)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["shadows"] == [], f"modules of plugins/medallion/ imported outside the package: {found['shadows']}"
    assert "medallion_run_notes" in found["plugins"]  # the bundle's one real plugin still loads
