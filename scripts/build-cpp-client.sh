#!/bin/sh
# Build the C++ client (clients/cpp) into build/cpp: `./dev cpp`, and tests/test_clients.py before it
# runs the sample. Installs the Debian packages it needs first when they are missing and this runs as
# root (or with a password-less sudo). Incremental: a second run rebuilds only what changed.
#
# Exit status: 0 built; 3 the packages are missing and cannot be installed here (the message says what
# to run); anything else: the install or the build failed.
set -eu
cd "$(dirname "$0")/.."
BUILD=build/cpp  # tests/test_clients.py runs the sample from here
# its Debian packages: present, installed now, or exit 3 with what to run (scripts/system-packages.sh)
sh scripts/system-packages.sh cpp

cmake -S clients/cpp -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$BUILD" --parallel "$(nproc 2>/dev/null || echo 2)" >&2
echo "built $BUILD/npc_talk" >&2
