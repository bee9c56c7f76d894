"""The ``npcvoice`` command.

npcvoice up                       Redis and all five services, until Ctrl-C
npcvoice serve SERVICE [flags]    one service (flags: npcvoice serve SERVICE --help)
npcvoice validate [PATH ...]      check persona files; prints file:line:column: message
npcvoice schema [--check]         rewrite (or check) npc_personas/persona.schema.json
npcvoice health ADDRESS           print a service's gRPC health status (exit 0 when SERVING)
npcvoice eval SCRIPT.yaml ...     run conversation scripts against the suite (exit 1 on a failed line)
npcvoice playground [flags]       a local web page to edit personas and talk to the NPCs
npcvoice edge [flags]             the conversation over a WebSocket (ws://host:8050/v1/converse)
npcvoice tune [flags]             distil the NPC corpus (training/) into the dialogue model, as a LoRA adapter
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from npcvoice.catalog import EDGE_PORT, REDIS_PORT, SERVICES, START_ORDER
from npcvoice.playground.options import DEFAULT_PORT as PLAYGROUND_PORT
from npcvoice.runtime.config import ConfigError, add_server_flags, load_service_config
from npcvoice.runtime.errors import ServiceError
from npcvoice.runtime.logs import configure_logging
from npcvoice.runtime.server import ServiceHost, StartupError

SCHEMA_PATH = Path("npc_personas") / "persona.schema.json"


def one_line(text: object) -> str:
    """A message that may span lines (YAML errors do), as one log line."""
    return " ".join(str(text).split())


def failure_line(name: str, error: Exception, started: bool) -> tuple[str, int]:
    """The one line that says why ``name`` stopped, and the exit code: 2 for what the configuration or
    the installation can fix, 1 for anything unexpected."""
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return f"{name}: bad engine option: {problems} (fix its `engine:` section or --option)", 2
    if isinstance(error, StartupError):
        return f"{name} cannot start: {error}", 2
    if isinstance(error, ServiceError):  # e.g. a configured model or voice that is not there
        return f"{name} cannot start: {error.message}", 2
    stage = "failed" if started else "cannot start"
    # A plain RuntimeError is raised on purpose, with a message that says it all.
    kind = "" if type(error) is RuntimeError else f"{type(error).__name__}: "
    detail = f"{kind}{one_line(error)}"
    return f"{name} {stage}: {detail} (--log-level debug shows the traceback)", 1


def serve(name: str, argv: list[str]) -> int:
    from npcvoice.runtime.providers import log_providers

    entry = SERVICES[name]
    parser = argparse.ArgumentParser(prog=f"npcvoice serve {name}", description=f"Run the {name} service.")
    add_server_flags(parser)
    args = parser.parse_args(argv)
    try:
        config = load_service_config(name, default_port=entry.port, args=args)
    except ConfigError as exc:
        print(f"npcvoice serve {name}: {one_line(exc)}", file=sys.stderr)
        return 2
    configure_logging(name, config.server.log_level, config.server.log_format)
    log_providers(name)
    host = ServiceHost(name, entry.registration(), config.server, config.engine)
    log = logging.getLogger("npcvoice")
    try:
        asyncio.run(host.serve_until_signalled())
    except Exception as exc:
        message, code = failure_line(name, exc, host.started)
        log.error("%s", message)
        # The traceback is for whoever debugs the service, not for someone starting the suite.
        log.debug("%s: traceback of the failure", name, exc_info=exc)
        return code
    return 0


def up(args: argparse.Namespace) -> int:
    from npcvoice.launcher import Launcher, run_up

    configure_logging("launcher", "info", "text")
    try:
        launcher = Launcher(
            [s.strip() for s in args.services.split(",") if s.strip()],
            config_file=args.config,
            data_dir=args.data_dir,
            redis_port=args.redis_port,
            redis_url=args.redis_url,
            persona_dir=args.personas,
            playground_port=args.playground_port,
            edge_port=args.edge_port,
        )
    except (ValueError, ConfigError) as exc:
        print(f"npcvoice up: {one_line(exc)}", file=sys.stderr)
        return 2
    return run_up(launcher)


def validate(paths: list[Path]) -> int:
    from npcvoice.personas.loader import PersonaError, load_persona, persona_files

    files: list[Path] = []
    for path in paths or [Path("npc_personas")]:
        files += persona_files(path) if path.is_dir() else [path]
    failed = 0
    for file in files:
        try:
            load_persona(file)
        except PersonaError as exc:
            failed += 1
            for line in exc.lines():
                print(line)
    print(f"{len(files) - failed} of {len(files)} persona files valid", file=sys.stderr)
    return 1 if failed else 0


def schema_text() -> str:
    from npcvoice.personas.schema import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def schema(check: bool, path: Path) -> int:
    expected = schema_text()
    if check:
        if not path.exists() or path.read_text() != expected:
            print(f"{path} is stale: run `npcvoice schema`", file=sys.stderr)
            return 1
        return 0
    path.write_text(expected)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["talk"], ["demo"]):
        from npcvoice.talk import main as talk_main

        return talk_main(argv[1:], demo=argv[0] == "demo")
    if argv[:1] == ["eval"]:
        from npcvoice.evaluation.cli import main as eval_main

        return eval_main(argv[1:])
    if argv[:1] == ["playground"]:
        from npcvoice.playground.cli import main as playground_main

        return playground_main(argv[1:])
    if argv[:1] == ["edge"]:
        from npcvoice.edge.cli import main as edge_main

        return edge_main(argv[1:])
    if argv[:1] == ["prepare-model"]:
        from npcvoice.devtools.prepare_model import main as prepare_main

        return prepare_main(argv[1:])
    if argv[:1] == ["tune"]:
        from npcvoice.training.tune import main as tune_main

        return tune_main(argv[1:])
    if len(argv) >= 2 and argv[0] == "serve":  # the service parses its own flags
        if argv[1] not in SERVICES:
            print(f"unknown service {argv[1]!r}; choose from {', '.join(START_ORDER)}", file=sys.stderr)
            return 2
        return serve(argv[1], argv[2:])

    parser = argparse.ArgumentParser(
        prog="npcvoice", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_cmd = commands.add_parser("up", help="run Redis and every service until Ctrl-C")
    up_cmd.add_argument("--config", type=Path, help="YAML configuration file")
    up_cmd.add_argument("--services", default=",".join(START_ORDER), help="comma-separated subset to run")
    up_cmd.add_argument("--data-dir", type=Path, default=Path(".data"), help="Redis data (AOF) lives here")
    redis = up_cmd.add_mutually_exclusive_group()
    redis.add_argument("--redis-port", type=int, default=REDIS_PORT, help="port of npcvoice's own Redis")
    redis.add_argument("--redis-url", help="use this existing Redis instead of starting one (redis://...)")
    up_cmd.add_argument("--personas", type=Path, default=Path("npc_personas"), help="persona directory")
    up_cmd.add_argument(
        "--playground-port", type=int, default=PLAYGROUND_PORT, help="the writers' page (0: do not start it)"
    )
    up_cmd.add_argument(
        "--edge-port",
        type=int,
        default=EDGE_PORT,
        help="the WebSocket edge, /v1/converse (0: do not start it)",
    )
    commands.add_parser("serve", help="run one service: npcvoice serve SERVICE [flags]")
    commands.add_parser(
        "prepare-model",
        help="convert a dialogue model (the bundled one, a GGUF or a HF folder) to ONNX, once",
    )
    commands.add_parser("tune", help="distil the NPC corpus (training/) into the dialogue model (see --help)")
    commands.add_parser("talk", help="talk to an NPC: npcvoice talk NPC_ID 'a line' reply.wav ...")
    commands.add_parser("demo", help="a scripted conversation with Hilda the blacksmith")
    commands.add_parser("playground", help="a web page to edit personas and talk to NPCs (see --help)")
    commands.add_parser(
        "edge", help="the conversation over a WebSocket, for engines without gRPC (see --help)"
    )
    commands.add_parser("eval", help="run conversation scripts: npcvoice eval npc_personas/evals/*.yaml")
    check = commands.add_parser("validate", help="check persona files")
    check.add_argument("paths", nargs="*", type=Path)
    schema_cmd = commands.add_parser("schema", help="write the persona JSON Schema")
    schema_cmd.add_argument("--check", action="store_true", help="fail if the committed schema is stale")
    schema_cmd.add_argument("--path", type=Path, default=SCHEMA_PATH)
    health = commands.add_parser("health", help="print a service's health status")
    health.add_argument("address", help="host:port")
    health.add_argument("--service", default="", help="health service name; empty for the whole server")
    health.add_argument("--tls-ca-file", type=Path, help="CA of the service's certificate: check over TLS")
    health.add_argument("--tls-server-name", default="", help="name in the certificate, if not the host")
    args = parser.parse_args(argv)

    if args.command == "up":
        return up(args)
    if args.command == "serve":
        parser.error("serve needs a service name: " + ", ".join(START_ORDER))
    if args.command == "validate":
        return validate(args.paths)
    if args.command == "schema":
        return schema(args.check, args.path)
    if args.command == "health":
        from npcvoice.runtime.health_client import check_health

        status = check_health(args.address, args.service, tls_ca_file=args.tls_ca_file,
                              tls_server_name=args.tls_server_name)  # fmt: skip
        print(status)
        return 0 if status == "SERVING" else 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
