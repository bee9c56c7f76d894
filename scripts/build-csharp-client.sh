#!/bin/sh
# Build the C# client (clients/csharp: the library and its console sample) into build/csharp with Debian's
# Mono compiler: `./dev csharp`, and tests/test_clients.py before it runs the sample (`mono
# build/csharp/npc_talk.exe`). Installs mono-mcs first when it is missing and this runs as root (or with a
# password-less sudo). The code keeps to C# 7.2 (what mcs compiles) and to APIs that Unity's .NET Standard
# 2.1 profile has, so the same files compile in Unity.
#
# Exit status: 0 built; 3 mono-mcs is missing and cannot be installed here (the message says what to run);
# anything else: the install or the build failed.
set -eu
cd "$(dirname "$0")/.."
BUILD=build/csharp  # tests/test_clients.py runs the sample from here
sh scripts/system-packages.sh csharp

mkdir -p "$BUILD"
MCS="mcs -langversion:7.2 -warnaserror+ -nowarn:1591 -r:System.dll -r:System.Core.dll"
$MCS -target:library -out:"$BUILD/NpcVoice.dll" -doc:"$BUILD/NpcVoice.xml" clients/csharp/Runtime/*.cs >&2
$MCS -out:"$BUILD/npc_talk.exe" -r:"$BUILD/NpcVoice.dll" "clients/csharp/Samples~/NpcTalk/"*.cs >&2
# The Unity sample, against the UnityEngine members it uses (signatures only: tests/support/unity): it
# compiles against this library without Unity installed.
$MCS -target:library -out:"$BUILD/UnityEngine.dll" tests/support/unity/UnityEngine.cs >&2
$MCS -target:library -out:"$BUILD/UnityNpc.dll" -r:"$BUILD/UnityEngine.dll" -r:"$BUILD/NpcVoice.dll" \
    "clients/csharp/Samples~/UnityNpc/"*.cs >&2
echo "checked that Samples~/UnityNpc compiles against $BUILD/NpcVoice.dll" >&2
echo "built $BUILD/NpcVoice.dll and $BUILD/npc_talk.exe (run it with mono)" >&2
