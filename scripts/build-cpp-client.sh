#!/bin/sh
# Build the C++ client (clients/cpp) into build/cpp: `./dev cpp`, and tests/test_cpp_client.py before it
# runs the sample. Installs the Debian packages it needs first when they are missing and this runs as
# root (or with a password-less sudo). Incremental: a second run rebuilds only what changed.
#
# Exit status: 0 built; 3 the packages are missing and cannot be installed here (the message says what
# to run); anything else: the install or the build failed.
set -eu
cd "$(dirname "$0")/.."
BUILD=build/cpp  # tests/test_cpp_client.py runs the sample from here
# gRPC's CMake config checks that every one of its plugins exists, hence protobuf-compiler-grpc;
# pkg-config is how it finds RE2.
PACKAGES="cmake g++ make pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $package"
    done
fi  # elsewhere (macOS, Fedora...) CMake's own search below says what is missing

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        echo "C++ client not built: missing Debian packages:$missing" >&2
        echo "install them with: sudo apt-get install -y$missing   (then ./dev cpp)" >&2
        exit 3
    fi
    echo "installing the C++ client's packages:$missing" >&2
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi

cmake -S clients/cpp -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$BUILD" --parallel "$(nproc 2>/dev/null || echo 2)" >&2
echo "built $BUILD/npc_talk" >&2
