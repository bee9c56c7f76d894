#!/bin/sh
# ./dev lock [--upgrade]: write the lock files in locks/ from pyproject.toml (and the .in files beside them)
# with uv. Without --upgrade every package keeps the version it has in the lock unless pyproject.toml's
# ranges no longer allow it (so adding a dependency changes only what it needs); with --upgrade each takes
# the newest version its range allows. Then run ./dev test: the suite says whether the new versions are good.
#
# Every lock is universal (markers instead of one platform) for CPython 3.11 and newer, with the hash of
# every file of each pinned version: pip installs them with --require-hashes.
#   npcvoice.txt    what ./dev installs into .venv: the package with its dev and convert extras (CI too)
#   runtime.txt     the package alone (Dockerfile's service image), at npcvoice.txt's versions
#   gpu.txt         the package with its gpu extra (Dockerfile.gpu, ./dev install-gpu), same versions
#   no-deps.txt     packages installed with --no-deps for one file each (no-deps.in says which and why)
#   peer-pipecat.txt  bench/peer_pipecat.py's own venv (pipecat-ai pins protobuf<7: it cannot share ours)
set -eu
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
upgrade=""
for arg in "$@"; do
    case "$arg" in
        --upgrade) upgrade="--upgrade" ;;
        *) echo "usage: ./dev lock [--upgrade]" >&2; exit 2 ;;
    esac
done
# torch comes in its CPU build (the convert extra): from a folder of wheels where the machine has one
# (this project's development machines carry it in /opt/wheels), else from PyTorch's CPU index.
TORCH_WHEELS="${NPCVOICE_TORCH_WHEELS:-/opt/wheels}"
if [ -d "$TORCH_WHEELS" ]; then
    torch_source="--find-links $TORCH_WHEELS"
else
    torch_source="--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match"
fi
compile() {
    out="$1"; shift
    # shellcheck disable=SC2086
    "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
        --custom-compile-command "./dev lock" $upgrade "$@" -o "locks/$out"
}
# shellcheck disable=SC2086
compile npcvoice.txt pyproject.toml --extra dev --extra convert $torch_source
compile runtime.txt pyproject.toml -c locks/npcvoice.txt
compile gpu.txt pyproject.toml --extra gpu -c locks/npcvoice.txt
compile no-deps.txt locks/no-deps.in --no-deps
compile peer-pipecat.txt locks/peer-pipecat.in
echo "locks/ written; now ./dev test tells whether these versions are good (git diff locks/ shows what moved)"
