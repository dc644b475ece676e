# The indici code location: a gRPC code server on port 4000 serving indici_dagster.definitions.
# The same image runs the webserver and the daemon on ECS (other commands, see deploy/ecs/) and
# every run (EcsRunLauncher / K8sRunLauncher start it with `dagster api execute_run`).
# Every dependency is pinned by constraints.txt, the set the test suite passed with; the build
# dependency (setuptools) by pyproject.toml's [build-system], with the same pin.
#
# The base: python:3.11.16-slim-bookworm (the Python minor the tests run on), pinned by the
# digest of its multi-platform manifest list as published on 2026-09-01 (docker-library/repo-info,
# repos/python/remote/3.11.16-slim-bookworm.md). To refresh: read the newest 3.11.x-slim-bookworm
# file there, or `docker buildx imagetools inspect python:3.11-slim-bookworm`, and replace the tag
# and the digest together (test_deploy_image.py checks the form).
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

# Debian security updates published since that base was built
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y --no-install-recommends \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/dagster/app

# the package and exactly the tested versions of its dependencies (incl. dagster-k8s)
COPY constraints.txt setup.py pyproject.toml ./
COPY indici_dagster ./indici_dagster
RUN pip install -c constraints.txt ".[k8s]" \
    && rm -rf build ./*.egg-info

# instance and workspace files: env references only, no secret
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY deploy/ecs/dagster.yaml deploy/ecs/workspace.yaml /opt/dagster/ecs/

# an unprivileged user owns nothing but Dagster's scratch folders
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --no-create-home dagster \
    && chown dagster:dagster /opt/dagster/dagster_home /opt/dagster/ecs
USER 10001:10001

EXPOSE 4000
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", \
     "--module-name", "indici_dagster.definitions", "--location-name", "indici"]
