# The canaryflow image: the webhook receiver, the Prefect worker that runs the rollout and cleanup
# flows, and the controller's metrics exporter (deployments/kubernetes/canaryflow/ runs all three).
#
#   docker build -t canaryflow:0.1.0 .
#
# Dependencies come from uv.lock exactly (`uv sync --frozen`, as `make setup` does), without the
# development group. The flows, their rollout specs and deployments/prefect.yaml are in the image
# under /app, the working directory of every flow run the worker starts.

ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first (a layer that changes only with the lock), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY analysis ./analysis
COPY canaryflow ./canaryflow
COPY flows ./flows
RUN uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim
RUN useradd --uid 10001 --home-dir /var/lib/canaryflow --create-home canaryflow
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY flows ./flows
COPY config ./config
COPY deployments/prefect.yaml ./deployments/prefect.yaml
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PREFECT_HOME=/var/lib/canaryflow/prefect \
    CANARYFLOW_REPORTS_DIR=/var/lib/canaryflow/reports \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1
USER 10001
ENTRYPOINT ["canaryflow"]
CMD ["--help"]
