"""The code location's container image, checked without Docker: what the Dockerfile copies exists
and is in the build context, nothing else is, dependencies are pinned, it runs as non-root and
serves the definitions module over gRPC on port 4000."""

import ast
import importlib
import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from dagster import Definitions
from docker.utils.build import exclude_paths
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from indici_dagster_tests.support.deploy import REPO

MODULE = "indici_dagster.definitions"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def copy_sources() -> list[str]:
    """Every build-context path a COPY instruction reads."""
    sources = []
    for keyword, rest in instructions():
        if keyword in {"COPY", "ADD"}:
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def build_context(root: Path) -> set[str]:
    """The files Docker would send for a build of `root`, by its .dockerignore."""
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {p for p in exclude_paths(str(root), patterns) if (root / p).is_file()}


def repo_with_local_state(tmp_path: Path) -> Path:
    """A copy of the repository's tracked files plus what a laptop accumulates: data, the
    embedded server's folder, a venv, a .env, caches, git metadata."""
    root = tmp_path / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, root / name)
    for name in (
        "data/landing/Patients_20261123_020000.parquet",
        "data/partitioned/dataset=Patients/date=2026-11-23/x.parquet",
        ".indici/pg/PG_VERSION",
        ".indici/dagster/runs.db",
        ".venv/bin/python",
        ".env",
        ".git/HEAD",
        ".tmp_dagster_home_abc/dagster.yaml",
        "indici_dagster/__pycache__/definitions.cpython-311.pyc",
        "indici_dagster/.env",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("local state\n")
    return root


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context(tmp_path):
    root = repo_with_local_state(tmp_path)
    context = build_context(root)
    sources = copy_sources()
    assert {"constraints.txt", "setup.py", "indici_dagster", "deploy/dagster.yaml"} <= set(sources)
    for source in sources:
        path = REPO / source
        assert path.exists(), source
        if path.is_dir():
            files = {str(p.relative_to(REPO)) for p in path.rglob("*.py")}
            assert files and files <= context, source
        else:
            assert source in context, source


def test_dockerignore_keeps_data_state_venv_tests_and_git_out_of_the_image(tmp_path):
    context = build_context(repo_with_local_state(tmp_path))
    assert "indici_dagster/definitions.py" in context
    forbidden = (
        "data/",
        ".indici/",
        ".venv/",
        ".git/",
        ".tmp_dagster_home",
        "indici_dagster_tests/",
        "benchmarks/",
        ".ci/",
    )
    leaked = sorted(p for p in context if p.startswith(forbidden))
    assert leaked == []
    assert not [p for p in context if Path(p).name == ".env" or "__pycache__" in p]


def test_the_image_serves_the_definitions_module_over_grpc_on_port_4000_as_non_root():
    steps = instructions()
    assert ("EXPOSE", "4000") in steps
    ((_, cmd),) = [s for s in steps if s[0] == "CMD"]
    command = ast.literal_eval(cmd)  # exec form: a JSON/Python list of strings
    assert command[:3] == ["dagster", "code-server", "start"]
    args = command[3:]
    assert args[args.index("--port") + 1] == "4000"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--module-name") + 1] == MODULE
    # the installed CLI accepts exactly these options
    from dagster._cli.code_server import start_command

    start_command.make_context("start", list(args))
    # the module the server loads imports and holds the project's definitions
    assert isinstance(importlib.import_module(MODULE).defs, Definitions)

    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    last_user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in steps[last_user:])


def _requirements(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """install_requires and extras_require of setup.py, read without running it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    )
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    return (
        ast.literal_eval(keywords["install_requires"]),
        ast.literal_eval(keywords["extras_require"]),
    )


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution that installing `requirements` brings in (from installed metadata)."""
    seen: set[str] = set()
    todo = [(Requirement(r), frozenset()) for r in requirements]
    while todo:
        requirement, _ = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            child = Requirement(text)
            environment = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(e) for e in environment):
                todo.append((child, frozenset()))
    return seen


def test_the_image_installs_only_pinned_dependencies_from_the_tested_set():
    from_steps = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert len(from_steps) == 1 and re.fullmatch(BASE_IMAGE, from_steps[0])
    runs = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert 'pip install -c constraints.txt ".[k8s]"' in runs

    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    assert "indici-dagster" not in pins
    install_requires, extras = _requirements(REPO / "setup.py")
    needed = _closure(install_requires + extras["k8s"])
    assert sorted(needed - set(pins)) == []
    for text in install_requires + extras["k8s"]:  # the constraints agree with setup.py's pins
        requirement = Requirement(text)
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)]), text


BASE_IMAGE = (
    rf"python:{sys.version_info.major}\.{sys.version_info.minor}\.\d+-slim-bookworm"
    r"@sha256:[0-9a-f]{64}"
)
"""The base: a patch release of the Python minor the tests run on, pinned by its digest."""


def test_the_base_is_pinned_by_digest_and_gets_the_os_security_updates_at_build():
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(BASE_IMAGE, steps[0][1]), steps[0]
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    upgrade = runs[0]  # before anything is installed on top
    commands = [c.strip() for c in upgrade.split("&&")]
    assert commands[0] == "apt-get update"
    assert any(re.fullmatch(r"(\S+=\S+ )*apt-get upgrade -y( --\S+)*", c) for c in commands)
    assert commands[-1] == "rm -rf /var/lib/apt/lists/*"  # no package lists left in the image
    assert "pip install" in runs[1]


def _install_commands() -> dict[str, str]:
    """The project's install commands: the README's, CI's and the image's."""
    found = {}
    for name in ("README.md", ".ci/run", "Dockerfile"):
        text = re.sub(r"\\\n", " ", (REPO / name).read_text(encoding="utf-8"))
        lines = [line for line in text.splitlines() if "pip install" in line]
        assert lines, name
        for number, line in enumerate(lines):
            found[f"{name}:{number}"] = line
    return found


def test_the_build_dependencies_are_pinned_exactly_and_agree_with_the_constraints():
    build = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    requires = [Requirement(text) for text in build["requires"]]
    assert requires and build["build-backend"] == "setuptools.build_meta"
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for requirement in requires:
        (specifier,) = requirement.specifier  # exactly one, `==`, no wildcard
        assert specifier.operator == "==" and "*" not in specifier.version, requirement
        assert pins[canonicalize_name(requirement.name)] == specifier.version, requirement
    # every install builds the package through those pins (pip's isolated build), never with
    # whatever build tools an environment happens to hold
    for where, command in _install_commands().items():
        assert "-c constraints.txt" in command, where
        assert "--no-build-isolation" not in command and "PIP_NO_BUILD_ISOLATION" not in command
