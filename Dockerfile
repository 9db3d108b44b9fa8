# syntax=docker/dockerfile:1
# aimodel-gitops: one image, two roles, like the Procfile:
#   docker run IMAGE web      -> aimodel serve --no-worker   (HTTP on $PORT, /healthz)
#   docker run IMAGE worker   -> aimodel worker
#   docker run IMAGE aimodel --version  (any other command runs as given)
# The builder stage makes wheels for the project and every dependency; the final stage installs
# them from that folder only (no compiler, no index), runs as an unprivileged user, and keeps
# its state in AIMODEL_HOME (a volume). No secret is baked in: they come from the environment.
ARG PYTHON_VERSION=3.12
# redis: several processes share the queue (REDIS_URL); remote: artifacts and data sets on
# s3:// and gs:// (fsspec). Build with --build-arg EXTRAS=redis for a smaller image.
ARG EXTRAS=redis,remote

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ARG EXTRAS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY repo_templates ./repo_templates
RUN pip wheel --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG EXTRAS
ARG APP_UID=10001
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AIMODEL_HOME=/var/lib/aimodel HOST=0.0.0.0 PORT=3000
# git: GitPython drives the git binary; tini: PID 1 that forwards SIGTERM so running jobs can finish.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid ${APP_UID} aimodel \
    && useradd --system --uid ${APP_UID} --gid ${APP_UID} --home-dir /home/aimodel --create-home --shell /usr/sbin/nologin aimodel \
    && mkdir -p /var/lib/aimodel && chown ${APP_UID}:${APP_UID} /var/lib/aimodel
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "aimodel-gitops[${EXTRAS}]"
COPY deploy/docker/entrypoint.sh /usr/local/bin/aimodel-entrypoint
COPY deploy/docker/healthcheck.py /usr/local/lib/aimodel/healthcheck.py
USER ${APP_UID}:${APP_UID}
WORKDIR /home/aimodel
VOLUME ["/var/lib/aimodel"]
EXPOSE 3000
# The web role answers /healthz; a worker container is healthy while its process runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/aimodel/healthcheck.py"]
ENTRYPOINT ["tini", "--", "/usr/local/bin/aimodel-entrypoint"]
CMD ["web"]
