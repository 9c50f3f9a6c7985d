# spiffctl on top of the spiffworkflow-backend image: one image for every backend role.
#   docker build -t spiffctl .                                   (online: wheels from PyPI)
#   scripts/build_wheels.py --for-official-image && \
#   docker build --build-arg PIP_NO_INDEX=1 -t spiffctl .         (offline: wheels/ only)
# The container command picks the role: run --role api | background | worker | all.
ARG BASE_IMAGE=ghcr.io/sartography/spiffworkflow-backend:latest

# ---- build: spiffctl + supervisor in their own venv; the backend's /app/.venv is never touched.
# The venv ships compiled bytecode: the base does not set PYTHONDONTWRITEBYTECODE, so without it
# every new container (and, with a read-only root filesystem, every start and every healthcheck)
# compiles spiffctl again: doctor took 1.5 s instead of 0.5 s. "unchecked-hash" .pyc files are never
# compared with their sources, which is right here: nothing in /opt/spiffctl changes after the
# build, and a rebuild compiles again.
FROM ${BASE_IMAGE} AS build
# PIP_NO_INDEX=1: install only from wheels/ in the build context (prepared by scripts/build_wheels.py).
ARG PIP_NO_INDEX=0
ARG PIP_INDEX_URL
# Optional extras, e.g. "sqs" for the Amazon SQS broker check (needs boto3 wheels too).
ARG SPIFFCTL_EXTRAS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY wheels/ /tmp/wheels/
# constraints.txt pins every runtime dependency: the image gets what CI tested.
COPY pyproject.toml README.md constraints.txt /tmp/src/
COPY spiffctl/ /tmp/src/spiffctl/
# The base puts /app/.venv first on PATH: create the venv from the interpreter itself.
RUN set -eu; \
    python=; \
    for candidate in /usr/local/bin/python3 /usr/bin/python3; do \
      if [ -x "$candidate" ]; then python=$candidate; break; fi; \
    done; \
    if [ -z "$python" ]; then echo "no python3 in /usr/local/bin or /usr/bin" >&2; exit 1; fi; \
    "$python" -m venv /opt/spiffctl; \
    /opt/spiffctl/bin/pip install --no-cache-dir --find-links /tmp/wheels -c /tmp/src/constraints.txt \
      "/tmp/src${SPIFFCTL_EXTRAS:+[$SPIFFCTL_EXTRAS]}"; \
    find /opt/spiffctl -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/spiffctl/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/spiffctl >/dev/null; \
    /opt/spiffctl/bin/spiffctl --help >/dev/null

# ---- final: the backend image + tini + the spiffctl venv
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG SPIFFCTL_VERSION=unknown
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="spiffctl" \
      org.opencontainers.image.description="spiffworkflow-backend with spiffctl: one image for the API, Background and Celery worker roles" \
      org.opencontainers.image.version="${SPIFFCTL_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# tini as PID 1 (signals, zombies), from whichever package manager the base has:
# apk on the official (Alpine) image, apt on Debian-based ones. Versions follow the base's release.
# hadolint ignore=DL3008,DL3018
RUN set -eu; \
    if ! command -v tini >/dev/null; then \
      if command -v apk >/dev/null; then \
        apk add --no-cache tini; \
      elif command -v apt-get >/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini; \
        rm -rf /var/lib/apt/lists/*; \
      else \
        echo "no apk or apt-get in the base image: install tini yourself" >&2; exit 1; \
      fi; \
    fi; \
    tini=$(command -v tini); \
    if [ "$tini" != /usr/local/bin/tini ]; then ln -sf "$tini" /usr/local/bin/tini; fi; \
    for tool in spiffctl supervisord supervisorctl; do ln -sf "/opt/spiffctl/bin/$tool" "/usr/local/bin/$tool"; done

COPY --from=build /opt/spiffctl /opt/spiffctl

# Only the symlinks above go on PATH, never /opt/spiffctl/bin: the backend's scripts must keep
# finding /app/.venv's python first.
EXPOSE 7000
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["/usr/local/bin/spiffctl", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tini", "--", "/usr/local/bin/spiffctl"]
CMD ["run", "--role", "api"]
