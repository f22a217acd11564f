# CiteQA: CPU-only image. Build: docker build -t citeqa .
# It listens on all interfaces, so it needs an API key first (kept in the data volume), then runs:
#   docker run --rm -v citeqa-data:/data citeqa citeqa keys create --name admin --scope admin
#   docker run -p 8000:8000 -v citeqa-data:/data citeqa
# Reached under another name than localhost (a server's): docker run -e CITEQA_ALLOWED_HOSTS=that.name ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CITEQA_HOST=0.0.0.0 \
    CITEQA_PORT=8000 \
    CITEQA_ALLOWED_HOSTS=localhost,127.0.0.1,::1 \
    CITEQA_DATA_DIR=/data/index \
    CITEQA_MODEL_CACHE=/opt/citeqa/models \
    HF_HUB_OFFLINE=1

RUN useradd --create-home --uid 10001 citeqa
WORKDIR /opt/citeqa

# CPU build of torch first, from PyTorch's CPU index, so that the pinned version never pulls CUDA.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The serving packages only: `eval/` (and its extras, matplotlib and the peers) stay out of the image.
COPY pyproject.toml README.md ./
COPY citeqa ./citeqa
COPY service ./service
COPY index ./index
COPY embeddings ./embeddings
COPY data ./data
RUN pip install -e . \
    && citeqa model prepare \
    && mkdir -p /data/index \
    && chown -R citeqa:citeqa /data /opt/citeqa/models

USER citeqa
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["citeqa", "serve", "--ingest-if-empty", "data/sample"]
