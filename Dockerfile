# trapan_cloud worker/runner image. One image serves the DaskJob runner, the Dask scheduler and the workers.
#   CPU:  docker build -t trapan-cloud:0.1.0-cpu .
#   CUDA: docker build --build-arg TORCH_VARIANT=cuda -t trapan-cloud:0.1.0-cuda .
# The two pip steps below are the Makefile's setup steps (tests/test_deploy.py keeps them equal): torch first from
# an explicit wheel index, because a bare `torch` requirement resolves to a multi-GB CUDA build.
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ARG TORCH_SPEC=torch==2.13.0
# CUDA wheel flavour; must be one that download.pytorch.org publishes for TORCH_SPEC.
ARG TORCH_CUDA=cu128

# GDAL reads COGs over HTTP/S3: never list remote "directories", only read the extensions we open, cache blocks.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR \
    CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF,.TIFF,.jp2,.json" \
    GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES \
    GDAL_HTTP_MULTIPLEX=YES \
    GDAL_HTTP_MAX_RETRY=5 \
    GDAL_HTTP_RETRY_DELAY=1 \
    GDAL_CACHEMAX=512 \
    VSI_CACHE=TRUE \
    VSI_CACHE_SIZE=67108864 \
    OMP_NUM_THREADS=1

RUN useradd --create-home --uid 10001 --user-group trapan
# Worker nannies read this before spawning workers (malloc settings that keep torch fast, see the file).
COPY deploy/dask.yaml /etc/dask/trapan.yaml
WORKDIR /opt/trapan_cloud
COPY pyproject.toml README.md ./
COPY trapan_cloud ./trapan_cloud

RUN set -eu; \
    case "$TORCH_VARIANT" in \
      cpu) TORCH_INDEX=https://download.pytorch.org/whl/cpu ;; \
      cuda) TORCH_INDEX="https://download.pytorch.org/whl/$TORCH_CUDA" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, got $TORCH_VARIANT" >&2; exit 2 ;; \
    esac; \
    python -m pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    python -m pip install -q "."; \
    python -m pip check; \
    trapan --help >/dev/null

USER trapan
WORKDIR /home/trapan
ENTRYPOINT ["trapan"]
CMD ["--help"]
