# One image for every part: `wspool server`, `wspool gateway`, `wspool operator`, `wspool bench`.
# The operator's manifests run it as a numeric non-root user on a read-only root filesystem.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements-runtime.lock pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/wspool \
    && /opt/wspool/bin/pip install --no-cache-dir --require-hashes -r requirements-runtime.lock \
    && /opt/wspool/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
COPY --from=build /opt/wspool /opt/wspool
ENV PATH=/opt/wspool/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["wspool"]
CMD ["server"]
