# trapan_cloud worker/runner image. One image serves the DaskJob runner, the Dask scheduler and the workers.
#   CPU:  docker build -t trapan-cloud:0.1.0-cpu .
#   CUDA: docker build --build-arg TORCH_VARIANT=cuda -t trapan-cloud:0.1.0-cuda .
# The two project pip steps below are the Makefile's setup steps (tests/test_deploy.py keeps them equal): torch first
# from an explicit wheel index, because a bare `torch` requirement resolves to a multi-GB CUDA build; then the package.
# Layers, slowest-changing first, so that a code change rebuilds only the last one: torch (its own layer, chosen by
# TORCH_VARIANT), the pinned runtime requirements (deploy/constraints.txt), then the package itself.
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ARG TORCH_SPEC=torch==2.13.0
# CUDA wheel flavour; must be one that download.pytorch.org publishes for TORCH_SPEC.
ARG TORCH_CUDA=cu128

# GDAL reads COGs over HTTP/S3: never list remote "directories", only read the extensions we open, cache blocks.
# Writable state lives in HOME, /tmp and the Dask local directory only, so that the root filesystem can be mounted
# read-only (deploy/k8s mounts emptyDir volumes on those three paths): matplotlib's and other caches go to /tmp.
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
    OMP_NUM_THREADS=1 \
    HOME=/home/trapan \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    DASK_TEMPORARY_DIRECTORY=/dask-scratch

# A numeric user (uid = gid = 10001) so that Kubernetes' runAsNonRoot can verify it; the manifests run as the same ids.
RUN groupadd --gid 10001 trapan \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --home-dir /home/trapan \
        --shell /usr/sbin/nologin trapan \
    && install -d -o 10001 -g 10001 -m 0750 /dask-scratch

# torch in its own layer, before anything from the project: the CUDA build is gigabytes.
# DL3013 (pin versions in pip): TORCH_SPEC is the pin (`torch==X.Y.Z`, a test keeps it `==` and equal to the
# Makefile's); hadolint cannot see through the variable.
# hadolint ignore=DL3013
RUN set -eu; \
    case "$TORCH_VARIANT" in \
      cpu) TORCH_INDEX=https://download.pytorch.org/whl/cpu ;; \
      cuda) TORCH_INDEX="https://download.pytorch.org/whl/$TORCH_CUDA" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, got $TORCH_VARIANT" >&2; exit 2 ;; \
    esac; \
    python -m pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX"

# The project's runtime requirements, pinned (torch's pure-Python requirements included, torch itself not), and the
# build backend: rebuilt only when the pins change (deploy/README.md, "Pinned requirements").
WORKDIR /opt/trapan_cloud
COPY deploy/constraints.txt ./constraints.txt
RUN python -m pip install -q --requirement constraints.txt

# Worker nannies read this before spawning workers (malloc settings that keep torch fast, see the file).
COPY deploy/dask.yaml /etc/dask/trapan.yaml
COPY pyproject.toml README.md ./
COPY trapan_cloud ./trapan_cloud
# Everything it needs is installed above: the constraints keep pip from changing any of it, and the build uses the
# pinned setuptools (no isolated build environment fetched from the index).
RUN python -m pip install -q --no-build-isolation --constraint constraints.txt "." \
    && python -m pip check \
    && trapan --help >/dev/null

USER 10001:10001
WORKDIR /home/trapan
ENTRYPOINT ["trapan"]
CMD ["--help"]
