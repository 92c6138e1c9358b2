# One image for every part: `wspool server`, `wspool gateway`, `wspool operator`, `wspool bench`.
# The operator's manifests run it as a numeric non-root user on a read-only root filesystem.
#
# BASE_IMAGE: any image with Python 3.11 as `python3` and its venv module: the official
# python:3.11-slim, or, offline, a Debian bookworm root with python3, python3-venv and
# python3-pip (tools/base-image.sh makes one: make image BASE_IMAGE=localhost/wspool-base:bookworm).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# The dependencies first, so that a change of the code or the docs reuses this layer.
COPY requirements-runtime.lock ./
RUN python3 -m venv /opt/wspool \
    && /opt/wspool/bin/pip install --no-cache-dir --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/wspool/bin/pip install --no-cache-dir --no-deps .

# The venv's interpreter is a link to the base's python3, so both stages use the same base.
FROM ${BASE_IMAGE}
COPY --from=build /opt/wspool /opt/wspool
ENV PATH=/opt/wspool/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["wspool"]
CMD ["server"]
