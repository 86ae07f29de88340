# syntax=docker/dockerfile:1
# Dockerfile: one image for the whole Semantest hub.
#
# The same image runs every role, chosen by the command:
#   semantest-server    all-in-one hub on port 3000 (the default: `docker run -p 3000:3000 IMAGE`)
#   semantest-auth | semantest-gateway | semantest-router    one service each, over Redis streams
#   semantest-operator  the Kubernetes operator (kopf) that the Helm chart deploys
#
# Two stages: `build` turns the source tree into a wheel and installs it with the `operator` extra
# into a virtual environment; `runtime` copies only that environment onto a clean slim Python, so
# no compiler, pip cache or source tree reaches the final image. It runs as an unprivileged user
# with a numeric UID (Kubernetes `runAsNonRoot` can verify it) and needs no writable filesystem.
#
# Build:  docker build -t semantest-hub .      (skaffold.yaml builds the same file)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: wheel + virtual environment --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is made of (see .dockerignore): metadata first, then the two packages.
COPY pyproject.toml ./

# Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed here either.
# The environment is made without pip; the base image's pip installs into it from outside.
# The dependencies (read from pyproject.toml, the one list) go first, in a layer of their own,
# so that a change to the source rebuilds only the steps below (with --layers / BuildKit cache).
RUN python -m venv --without-pip /opt/semantest \
 && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['operator']))" >/tmp/requirements.txt \
 && python -m pip --python /opt/semantest/bin/python install --only-binary=:all: \
      -r /tmp/requirements.txt

COPY README.md ./
COPY services ./services
COPY operator ./operator
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m pip --python /opt/semantest/bin/python install --only-binary=:all: \
      "$(ls /wheels/semantest_hub-*.whl)[operator]" \
 && /opt/semantest/bin/python -c "import semantest.server, semantest_operator"

# ---- runtime: the environment on a clean base, as a non-root user -------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG UID=10001
RUN groupadd --system --gid "${UID}" semantest \
 && useradd --system --uid "${UID}" --gid semantest --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin semantest

COPY --from=build /opt/semantest /opt/semantest

ENV PATH=/opt/semantest/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000

# An empty, root-owned working directory: `./config.json` is looked up here (DESIGN §4).
WORKDIR /srv/semantest
USER ${UID}:${UID}
EXPOSE 3000

# Liveness of the hub's HTTP server (DESIGN §3.2); plain HTTP on $PORT, so it reports unhealthy
# when the server terminates TLS itself (Kubernetes uses the chart's probes instead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/health/live', timeout=4)"]

CMD ["semantest-server"]
