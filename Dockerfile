# The indici code location: a gRPC code server on port 4000 serving indici_dagster.definitions.
# The same image runs the webserver and the daemon on ECS (other commands, see deploy/ecs/) and
# every run (EcsRunLauncher / K8sRunLauncher start it with `dagster api execute_run`).
# Every dependency is pinned by constraints.txt, the set the test suite passed with.
FROM python:3.11.7-slim-bookworm

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
