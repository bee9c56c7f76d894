#!/bin/sh
# The system packages beyond Python that some tests and tools need, in one place: checks them, installs
# the missing ones where it can (apt-get, as root or with a password-less sudo), and otherwise says in
# one paragraph what is missing, what skips without it, and the command to run.
#
#   sh scripts/system-packages.sh browser   Chromium, for the playground's browser tests (./dev test)
#   sh scripts/system-packages.sh cpp       the C++ client's toolchain and gRPC (./dev cpp)
#   sh scripts/system-packages.sh csharp    Mono's C# compiler and runtime, for the C# client (./dev csharp)
#
# Exit status: 0 present (or installed now); 3 missing and not installable here (the message says why);
# 1 apt-get failed.
# Versions tested: docs/dev-loop.md, "System packages".
set -eu
group="${1:?usage: system-packages.sh browser|cpp|csharp}"
case "$group" in
    browser)
        PACKAGES="chromium"
        WHAT="the playground's browser tests skip"
        OTHERWISE="install Chromium with your system's package manager, or point NPCVOICE_CHROMIUM at it" ;;
    cpp)
        # gRPC's CMake config checks that every one of its plugins exists, hence protobuf-compiler-grpc;
        # pkg-config is how it finds RE2.
        PACKAGES="cmake g++ make pkg-config libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc"
        WHAT="the C++ client is not built and its test skips"
        OTHERWISE="install CMake, a C++17 compiler, gRPC C++ and protobuf with your system's package manager" ;;
    csharp)
        PACKAGES="mono-mcs"  # brings mono-runtime and the class libraries it compiles against
        WHAT="the C# client is not built and its tests skip"
        OTHERWISE="install Mono (mcs and mono) with your system's package manager" ;;
    *) echo "usage: system-packages.sh browser|cpp|csharp" >&2; exit 2 ;;
esac

missing=""
if [ "$group" = browser ]; then  # any Chromium will do, from a package or not
    { command -v chromium || command -v chromium-browser || [ -x "${NPCVOICE_CHROMIUM:-}" ]; } >/dev/null 2>&1 \
        || missing=" chromium"
elif [ "$group" = csharp ]; then  # any Mono will do, from a package or not
    { command -v mcs && command -v mono; } >/dev/null 2>&1 || missing=" mono-mcs"
elif command -v dpkg-query >/dev/null 2>&1; then
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $package"
    done
fi  # elsewhere the C++ build's own CMake search says what is missing
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing:$missing ($WHAT). This machine has no apt-get: $OTHERWISE." >&2
    exit 3
fi
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "missing Debian packages:$missing ($WHAT). Not root and no password-less sudo, so install them" >&2
    echo "yourself: sudo apt-get install -y$missing" >&2
    exit 3
fi
echo "installing Debian packages:$missing ..." >&2
# shellcheck disable=SC2086  # one word per package
if ! { $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $missing >/dev/null; }; then
    echo "could not install:$missing ($WHAT); apt-get's messages are above" >&2
    exit 1
fi
