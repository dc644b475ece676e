"""One image for every environment: nothing baked into the image (the package, the instance and
workspace files, the Dockerfile's inputs) and nothing in deploy/ecs/ names an account, a network
or an environment; the ECS workspace dials whatever host the environment names."""

import re
from pathlib import Path

import pytest

from indici_dagster_tests.support.cfn import TEMPLATE
from indici_dagster_tests.support.deploy import DEPLOY, REPO

ECS = DEPLOY / "ecs"

# Every value that names an account, a network or an environment.
ACCOUNT_SPECIFIC = [
    re.compile(r"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])"),  # an AWS account id
    re.compile(r"\b(subnet|sg|vpc|eni)-[0-9a-f]{8,17}\b"),
    re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:"),
    re.compile(r"\.dkr\.ecr\.|\.rds\.amazonaws\.com|\.elb\.amazonaws\.com"),
]
REGION = re.compile(r"\b(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-\d\b")


def _image_files() -> list[Path]:
    """Every file the Dockerfile copies into the image."""
    copied = [REPO / "Dockerfile", REPO / "constraints.txt", REPO / "setup.py"]
    copied += [REPO / "pyproject.toml", DEPLOY / "dagster.yaml"]
    copied += [ECS / "dagster.yaml", ECS / "workspace.yaml"]
    copied += [p for p in (REPO / "indici_dagster").rglob("*") if p.is_file()]
    return [p for p in copied if "__pycache__" not in p.parts]


def test_neither_the_image_nor_the_ecs_files_name_an_account_network_or_environment():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY deploy/ecs/dagster.yaml deploy/ecs/workspace.yaml /opt/dagster/ecs/" in dockerfile
    files = _image_files() + sorted(ECS.iterdir())
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in ACCOUNT_SPECIFIC:
            found = pattern.search(text)
            assert not found, f"{path.relative_to(REPO)}: {found.group(0)}"
    # the instance and workspace files name no region either; nor does the template
    for path in [*sorted(ECS.iterdir()), DEPLOY / "dagster.yaml"]:
        found = REGION.search(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(REPO)}: {found.group(0)}"
    # the check can fail: the files as they were before the template
    for old in ("123456789012", "subnet-0123456789abcdef0", "sg-0123456789abcdef0"):
        assert any(p.search(old) for p in ACCOUNT_SPECIFIC), old
    assert not (
        set(ECS.iterdir()) - {ECS / n for n in ("dagster.yaml", "workspace.yaml", TEMPLATE.name)}
    )


@pytest.mark.parametrize("host", ["indici-code-location.indici.local", "code.staging.internal"])
def test_the_workspace_dials_the_host_the_environment_names(host, monkeypatch):
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    monkeypatch.setenv("DAGSTER_CODE_LOCATION_HOST", host)
    (origin,) = location_origins_from_yaml_paths([str(ECS / "workspace.yaml")])
    assert (origin.host, origin.port, origin.location_name) == (host, 4000, "indici")
