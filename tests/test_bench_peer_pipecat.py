"""bench/peer_pipecat.py's own logic: its scripts, its per-phase numbers, its readings of /proc, its setup.
Running Pipecat itself needs the peer venv (a 10-15 minute build), so that is the bench's job, not CI's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import children, cpu_seconds, peak_mb, speech_end_s
from bench.conversation import LINES
from bench.peer_pipecat import (
    PEER_VENV,
    REQUIREMENTS,
    WARM_UP,
    Recording,
    phase_of,
    recordings,
    scripts,
    setup_commands,
    timed,
)
from bench.peer_pipecat_report import comparison

REPO = Path(__file__).resolve().parents[1]


def test_every_phase_plays_the_same_turns_and_only_the_warm_up_is_untimed() -> None:
    voices = recordings()
    plans = scripts(4, voices, "1,2,4")
    assert list(plans) == ["typed", "speech", "1 at once", "2 at once", "4 at once"]
    assert plans["typed"] == [[WARM_UP, *LINES[:4]]]
    assert plans["speech"][0][0] == WARM_UP and plans["speech"][0][1:] == voices[:4]
    assert [len(c) for c in plans["4 at once"]] == [3, 3, 3, 3]
    assert plans["2 at once"][1] == LINES[1:4]  # each conversation its own lines
    assert timed(plans["typed"]) == [LINES[:4]]
    assert timed(plans["2 at once"]) == plans["2 at once"]


def test_the_recordings_are_real_people_short_enough_to_be_one_line() -> None:
    found = recordings(max_s=6.0)
    assert found and all(len(r.speech) <= 6 * 16000 for r in found)
    assert not any(r.path.name == "jfk.wav" for r in found)  # 11 s, with long pauses inside
    assert all(0 < r.speech_end_s <= len(r.speech) / 16000 for r in found)


def test_end_of_speech_is_after_the_last_sample_above_minus_40_dbfs() -> None:
    audio = np.zeros(16000, np.float32)
    audio[4000:7999] = 0.5
    audio[12000] = 0.005  # quieter than -40 dBFS: not speech
    assert speech_end_s(audio, 16000) == 7999 / 16000
    assert speech_end_s(np.zeros(800, np.float32), 16000) == 800 / 16000


def test_a_phase_times_all_but_the_warm_up_and_divides_cpu_by_every_turn() -> None:
    plan: list[list[str | Recording]] = [[WARM_UP, "a", "b"]]
    phase = phase_of(plan, [[(9.0, 9.0, 1.0), (0.5, 2.0, 1.5), (0.7, 2.5, 2.5)]], cpu_s=6.0)
    assert phase.first == [0.5, 0.7] and phase.total == [2.0, 2.5]
    assert phase.audio_s == 4.0 and phase.turns == 3 and phase.cpu_per_turn == 2.0


def test_the_table_gives_pipecat_over_ours_for_each_measure() -> None:
    ours = {"typed": phase_of([[WARM_UP, "a"]], [[(1, 1, 1), (0.5, 2.0, 2.0)]], 4.0)}
    theirs = {"typed": phase_of([[WARM_UP, "a"]], [[(1, 1, 1), (1.0, 3.0, 2.0)]], 2.0)}
    rows = {row[0]: row[1:] for row in comparison(ours, theirs, (100.0, 300.0))}
    assert rows["typed: first audio after the line p50 ms"] == [500.0, 1000.0, "2.00"]
    assert rows["typed: whole turn p50 ms"] == [2000.0, 3000.0, "1.50"]
    assert rows["typed: CPU s per turn"] == [2.0, 1.0, "0.50"]
    assert rows["peak memory MB (VmHWM, all processes summed)"] == [100.0, 300.0, "3.00"]


def test_cpu_and_memory_are_read_from_every_process_below_the_bench() -> None:
    burn = (
        "import sys, time\nwhile time.process_time() < 0.3: pass\nprint('done', flush=True)\nsys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        assert child.pid in children(os.getpid())
        assert os.getpid() not in children(os.getpid())
        assert cpu_seconds([child.pid]) >= 0.25
        assert peak_mb([child.pid]) > 1
    finally:
        child.communicate("")
    assert child.pid not in children(os.getpid())
    started = time.process_time()
    assert cpu_seconds([os.getpid()]) >= started - 0.05  # the same clock as the kernel's own


def test_the_peer_venv_gets_the_pipecat_that_dev_installs_from_its_lock_and_is_ignored_by_git() -> None:
    listed = (REPO / "locks" / "peer-pipecat.in").read_text()
    wanted = re.search(r"pipecat-ai(\[[^\]]*\])?==([\d.]+)", listed)
    assert wanted is not None and wanted.group(1) is not None
    assert {"whisper", "piper", "openai"} <= set(wanted.group(1).strip("[]").split(","))
    assert "llama-cpp-python[server]" in listed
    # The Smart Turn model our speech service loads comes from the same pipecat-ai release.
    for lock in ("peer-pipecat.txt", "no-deps.txt"):
        assert f"\npipecat-ai=={wanted.group(2)} " in (REPO / "locks" / lock).read_text(), lock
    commands = setup_commands("python3")
    assert commands[0] == ["python3", "-m", "venv", str(PEER_VENV)]
    assert commands[1][-3:] == ["--require-hashes", "-r", str(REQUIREMENTS)]
    ignored = subprocess.run(["git", "check-ignore", "-q", ".venv-peer/"], cwd=REPO, check=False)
    assert ignored.returncode == 0
