"""``npcvoice playground``: serve the writers' page for a running suite (``npcvoice up`` starts it too)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from npcvoice.catalog import SERVICES
from npcvoice.playground.options import DEFAULT_PORT, PlaygroundOptions
from npcvoice.runtime.config import ConfigError, load_service_config


def options_from(args: argparse.Namespace) -> PlaygroundOptions:
    """The gateway's address and key come from the suite's configuration (the same file and environment
    ``npcvoice up`` reads) unless given here."""
    suite = argparse.Namespace(config=args.config)
    gateway = load_service_config(
        "conversation", default_port=SERVICES["conversation"].port, args=suite
    ).server
    key = gateway.api_keys[0] if gateway.api_keys else ""
    return PlaygroundOptions(
        host=args.host,
        port=args.port,
        gateway=args.gateway or f"127.0.0.1:{gateway.port}",
        api_key=key if args.api_key is None else args.api_key,
        persona_dir=args.personas,
        eval_dir=args.evals,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="npcvoice playground", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port of the page")
    parser.add_argument("--gateway", help="the conversation gateway (default: from the suite's config)")
    parser.add_argument("--api-key", help="the gateway's API key (default: the suite's first api_keys)")
    parser.add_argument("--config", type=Path, help="the suite's YAML configuration file")
    parser.add_argument("--personas", type=Path, default=Path("npc_personas"), help="persona directory")
    parser.add_argument("--evals", type=Path, help="conversation scripts (default: PERSONAS/evals)")
    args = parser.parse_args(argv)
    try:
        options = options_from(args)
    except ConfigError as error:
        print(f"npcvoice playground: {error}", file=sys.stderr)
        return 2
    import uvicorn

    from npcvoice.playground.server import create_app

    print(f"playground: http://{options.host}:{options.port}/ (gateway {options.gateway})", flush=True)
    # A conversation left open in a browser must not hold up Ctrl-C of the suite.
    uvicorn.run(
        create_app(options),
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    return 0
