"""``npcvoice eval SCRIPT.yaml ...``: run conversation scripts against a running suite.

Exit status: 0 when every line passed (and, with --replay, the replies are the recorded ones), 1 when a
check failed or a reply changed, 2 when a script cannot be read or the gateway cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import grpc

from npcvoice.client import NpcClient
from npcvoice.evaluation.report import differences, script_table, summary, transcript
from npcvoice.evaluation.runner import LineResult, run_script
from npcvoice.evaluation.script import ScriptError, load_script


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="npcvoice eval", description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="+", type=Path, help="conversation scripts (YAML)")
    parser.add_argument("--address", default="127.0.0.1:50050", help="the conversation gateway")
    parser.add_argument("--api-key", default=None, help="the gateway's API key, if it needs one")
    parser.add_argument("--voice", action="store_true", help="voice replies (slower; default: text)")
    parser.add_argument("--record", type=Path, help="write what the NPCs said to this JSON transcript")
    parser.add_argument("--replay", type=Path, help="compare with this recorded transcript")
    args = parser.parse_args(argv)
    try:
        scripts = {str(path): load_script(path) for path in args.scripts}
        recorded = json.loads(args.replay.read_text()) if args.replay else None
    except (ScriptError, OSError, json.JSONDecodeError) as error:
        print(f"npcvoice eval: {error}", file=sys.stderr)
        return 2

    async def run_all() -> dict[str, list[LineResult]]:
        async with NpcClient(args.address, args.api_key) as client:
            return {name: await run_script(script, client, args.voice) for name, script in scripts.items()}

    try:
        runs = asyncio.run(run_all())
    except grpc.aio.AioRpcError as error:
        print(
            f"npcvoice eval: the gateway at {args.address}: {error.code().name}: {error.details()}",
            file=sys.stderr,
        )
        return 2
    for name, results in runs.items():
        print(script_table(name, results), end="\n\n")
    print(summary(runs))
    if args.record:
        args.record.write_text(json.dumps(transcript(runs), indent=1) + "\n")
        print(f"\ntranscript written to {args.record}")
    changed = differences(recorded, runs) if recorded is not None else []
    for diff in changed:
        print("\n" + diff)
    if recorded is not None:
        print(f"\nreplay: {'the replies changed' if changed else 'the same replies as recorded'}")
    failed = any(not result.passed for results in runs.values() for result in results)
    return 1 if failed or changed else 0
