#!/bin/sh
# Run after `pip install --require-hashes -r locks/gpu.txt` (npcvoice and its gpu extra): leave the CUDA builds of onnxruntime and onnxruntime-genai as the only
# builds in this Python environment.
#
# piper-tts depends on the CPU package "onnxruntime" (and onnxruntime-genai on it too). Installed beside
# "onnxruntime-gpu", both unpack into the same onnxruntime/ folder, the CPU files win, CUDA silently
# disappears and `pip check` says nothing. Uninstalling every build and reinstalling only the GPU ones
# (their CUDA/cuDNN dependencies came with the extra) fixes the folder. Every service logs the execution
# providers it really got at start-up; look for CUDAExecutionProvider there.
#
# Speech (CTranslate2) wants CUDA 12 cuBLAS/cuDNN where onnxruntime-gpu wants CUDA 13: the "gpu" extra
# brings nvidia-cublas-cu12 and nvidia-cudnn-cu12 too, and `npcvoice up` puts their folders on the speech
# process's library path only (services/npcvoice/service_env.py). The last step asks each service's own
# library, in that service's environment, whether it can use the GPU: one line per service.
#
# --image: in an image build (Dockerfile.gpu), where no GPU is reserved: that last step is left out (it
# would fail there for want of a device, not of a library); each service logs the providers it got when
# the container starts.
set -eu
PYTHON="${PYTHON:-python}"
"$PYTHON" -m pip uninstall -y onnxruntime onnxruntime-gpu onnxruntime-genai onnxruntime-genai-cuda
# the locked versions, with their hashes (locks/gpu.txt)
gpu_builds="$(mktemp)"
"$PYTHON" -m npcvoice.devtools.locks --extract gpu.txt onnxruntime-gpu onnxruntime-genai-cuda >"$gpu_builds"
"$PYTHON" -m pip install --require-hashes --no-deps -r "$gpu_builds"
rm -f "$gpu_builds"
"$PYTHON" - <<'PY'
import onnxruntime

providers = onnxruntime.get_available_providers()
print("onnxruntime", onnxruntime.__version__, providers)
if "CUDAExecutionProvider" not in providers:
    raise SystemExit("CUDAExecutionProvider missing: another onnxruntime build is still installed")
PY
[ "${1:-}" = --image ] || "$PYTHON" -m npcvoice.devtools.gpu_check
