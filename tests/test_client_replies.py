"""How the game-engine clients gather a turn's events into a Reply (clients/cpp's ``npcvoice::Reply``,
clients/csharp's ``NpcVoice.Reply``), the logic alone: each client's own source, compiled with a small
program that feeds it the event orders the gateway sends (tests/support/reply_order), no suite. The
orders that need care are those of an Interruption (conversation.proto): one that comes first may be of
this turn, cut before anything of it went out, or of the turn before, talked over after its TurnEnd while
its audio still played."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROGRAMS = REPO_ROOT / "tests" / "support" / "reply_order"
EXPECTED = [
    # A typed line interrupted before any of its reply went out: the cut is this turn's.
    "cut before any output: turn=3 interruption=3 ended=1",
    # The turn before's reply, talked over while it still played: not this reply's.
    "the turn before talked over: turn=3 interruption=none ended=1",
    "cut while speaking: turn=3 interruption=3 ended=1",
]


def build_cpp(out: Path) -> list[str]:
    cpp = REPO_ROOT / "clients" / "cpp"
    exe = out / "reply_order"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", f"-I{cpp / 'include'}", f"-I{cpp / 'src'}",
         str(PROGRAMS / "reply_order.cpp"), str(cpp / "src" / "reply.cpp"), "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return [str(exe)]


def build_csharp(out: Path) -> list[str]:
    exe = out / "ReplyOrder.exe"
    sources = sorted(str(p) for p in (REPO_ROOT / "clients" / "csharp" / "Runtime").glob("*.cs"))
    subprocess.run(
        ["mcs", "-langversion:7.2", "-warnaserror+", "-nowarn:1591", "-r:System.dll", "-r:System.Core.dll",
         f"-out:{exe}", *sources, str(PROGRAMS / "ReplyOrder.cs")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return ["mono", str(exe)]


BUILDERS = {"cpp": ("g++", build_cpp), "csharp": ("mcs", build_csharp)}


@pytest.mark.parametrize("client", sorted(BUILDERS))
def test_an_interruption_that_comes_first_goes_to_the_turn_it_names(client: str, tmp_path: Path) -> None:
    compiler, build = BUILDERS[client]
    if shutil.which(compiler) is None or (client == "csharp" and shutil.which("mono") is None):
        pytest.skip(f"{compiler} is not installed (scripts/build-{client}-client.sh installs it)")
    try:
        command = build(tmp_path)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"{client} did not compile:\n{error.stdout}{error.stderr}")
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.splitlines() == EXPECTED
