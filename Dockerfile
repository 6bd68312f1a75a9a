# tinygpt images: the REST API with the bundled model (default target) and JupyterLab with the lessons (`lab`).
#   docker build -t tinygpt .                          then  docker run --rm -p 127.0.0.1:8000:8000 tinygpt
#   docker build --target lab -t tinygpt-lab .         then  docker run --rm -p 127.0.0.1:8888:8888 tinygpt-lab
# Works with BuildKit and with the legacy builder (no RUN --mount), so Debian's docker-compose 1.29 builds it too.
#
# Build arguments:
#   BASE           any Debian-like image with python3 (3.11+) and its venv module; default the public Python image
#   TORCH_INDEX    where torch comes from; the default is the CPU-only build. For a CUDA image use e.g.
#                  https://download.pytorch.org/whl/cu126 and run it with `--gpus all`
#   TORCH_SPEC     the torch requirement, e.g. "torch==2.13.0"
#   PIP_SETUP_URL  optional: a URL serving pip.conf (and ca.crt) for builds behind a private index or a TLS proxy;
#                  fetched and deleted within each install step, never stored in a layer (see docker/pip-install)
ARG BASE=python:3.11-slim

# ---- reqs: the dependency lists from pyproject.toml (layers below are rebuilt only when these lists change) ----
FROM ${BASE} AS reqs
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c "import tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
extra = p.get('optional-dependencies', {}); w = lambda name, reqs: open(name, 'w').write('\n'.join(reqs) + '\n'); \
w('/tmp/api.txt', ['setuptools>=77'] + p['dependencies'] + extra.get('serve', [])); w('/tmp/lab.txt', extra['dev'])"

# ---- deps: a virtual environment with CPU torch and the package's dependencies (`serve` extra) ----
FROM ${BASE} AS deps
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch
ARG PIP_SETUP_URL=
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/home/tinygpt/.cache/huggingface
# A non-root user; HF_HOME exists and is theirs, so a named volume mounted there starts writable.
RUN useradd --create-home --uid 1000 --shell /bin/sh tinygpt \
 && mkdir -p "$HF_HOME" && chown -R tinygpt:tinygpt /home/tinygpt \
 && python3 -m venv "$VIRTUAL_ENV"
COPY docker/pip-install /usr/local/bin/pip-install
# torch's wheel carries C++ test programs (torch/test, most of torch/bin): about 130 MB that nothing here runs.
RUN pip-install --index-url "$TORCH_INDEX" "$TORCH_SPEC" \
 && t=$(python3 -c "import os, torch; print(os.path.dirname(torch.__file__))") \
 && rm -rf "$t/test" && find "$t/bin" -type f ! -name torch_shm_manager -delete
# Test suites inside the installed packages (pandas/tests, ...: about 125 MB) are never imported: dropped.
COPY --from=reqs /tmp/api.txt /tmp/api.txt
RUN pip-install -r /tmp/api.txt \
 && find "$VIRTUAL_ENV/lib" -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +

# ---- lab: JupyterLab with the lessons, for a classroom ----
FROM deps AS lab
ARG PIP_SETUP_URL=
COPY --from=reqs /tmp/lab.txt /tmp/lab.txt
RUN pip-install -r /tmp/lab.txt \
 && find "$VIRTUAL_ENV/lib" -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY tinygpt ./tinygpt
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build *.egg-info
COPY --chown=tinygpt:tinygpt nbs /home/tinygpt/lessons
USER tinygpt
WORKDIR /home/tinygpt/lessons
ENV PORT=8888
EXPOSE 8888
# The token comes from JUPYTER_TOKEN when set; otherwise Jupyter makes one and prints the URL in the log.
CMD ["sh", "-c", "exec jupyter lab --ip=0.0.0.0 --port=\"$PORT\" --no-browser --ServerApp.root_dir=/home/tinygpt/lessons"]

# ---- api (default): `tinygpt serve` with the bundled model ----
FROM deps AS api
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY tinygpt ./tinygpt
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && rm -rf build *.egg-info
USER tinygpt
WORKDIR /home/tinygpt
ENV PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "exec tinygpt serve --host 0.0.0.0 --port \"$PORT\""]
