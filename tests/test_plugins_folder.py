"""Airflow's plugin loader must not import the medallion package's modules a second time.

Airflow imports every `.py` under `plugins/` as a top-level module (`config`, `transform`, ...)
to look for AirflowPlugin classes, beside the real `medallion.*` modules: module-level side effects
(the Cosmos patch in `transform`) ran twice and 15 shadow copies sat in `sys.modules`.
`plugins/.airflowignore` keeps the package out of that scan; the package still imports normally.
"""

from __future__ import annotations

import ast
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


def medallion_imports(path: Path, modules: set[str]) -> set[str]:
    """The medallion modules a module imports when it runs (at the top or inside a function), without
    the `if TYPE_CHECKING:` blocks: those are read by type checkers only."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("medallion"):
            for a in node.names:  # `from medallion import alerts` names a module; `from medallion.x import y` a name
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found & modules


def test_the_package_has_no_import_cycle():
    """A module that imports another that imports it back (alerts <-> freshness, liveairflow <-> localstack,
    alerts <-> outbox) works only while one side imports inside a function; the layers are clearer without
    the cycle. Alerts composes and sends, the outbox keeps and retries on top of it, oncall and freshness
    use both."""
    package = PLUGINS / "medallion"
    files = {
        ".".join(("medallion", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    graph = {name: medallion_imports(path, set(files)) - {name} for name, path in files.items()}
    assert graph["medallion.freshness"] >= {"medallion.config", "medallion.outbox"}  # the parser sees imports

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and not seen.add(n) and reaches(n, goal, seen)) for n in graph[start])

    cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and reaches(b, a, set()))
    assert cycles == [], f"import cycles: {cycles}"


def test_the_tests_mirror_the_package():
    """tests/ mirrors plugins/medallion/: a subfolder of tests/ is a folder of the package (tests/local/demo
    for medallion/local/demo), and each test file in it is named after one of that folder's modules
    (test_<module>.py or test_<module>_<aspect>.py). The top level holds the runtime modules' tests, the
    bundle-wide ones (dags, docker, products) and each product's end-to-end tests (test_<product>*.py:
    declaration, dbt models and DAGs, not plugins code); the tests of local tooling never sit there."""
    package, tests = PLUGINS / "medallion", ROOT / "tests"

    def modules(folder: Path) -> set[str]:
        return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}

    def named_after(test: Path, names: set[str]) -> str | None:
        return next((m for m in names if test.stem == f"test_{m}" or test.stem.startswith(f"test_{m}_")), None)

    misplaced = []
    for folder in sorted({p.parent for p in tests.rglob("test_*.py")} - {tests}):
        mirror = package / folder.relative_to(tests)
        if not (mirror / "__init__.py").exists():
            misplaced.append(f"{folder.relative_to(ROOT)}/ mirrors no package folder ({mirror.relative_to(ROOT)})")
            continue
        misplaced += [f"{t.relative_to(ROOT)} is named after no module of {mirror.relative_to(ROOT)}"
                      for t in sorted(folder.glob("test_*.py")) if not named_after(t, modules(mirror))]  # fmt: skip
    products = {p.stem for p in (ROOT / "include" / "products").glob("*.yml")}
    for sub in sorted(p.parent for p in package.rglob("__init__.py") if p.parent != package):
        for t in sorted(tests.glob("test_*.py")):
            module = named_after(t, modules(sub))
            if module and module not in products:
                misplaced.append(f"{t.relative_to(ROOT)} tests {module} of {sub.relative_to(ROOT)}: move it to "
                                 f"tests/{sub.relative_to(package)}/")  # fmt: skip
    assert misplaced == [], "\n".join(misplaced)
    assert {p.parent.relative_to(tests).as_posix() for p in tests.rglob("test_*.py")} >= {"local", "local/demo"}
