"""``npcvoice edge``: the conversation over a WebSocket (``/v1/converse``) for a running gateway
(``npcvoice up`` starts it too)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from npcvoice.catalog import EDGE_PORT, SERVICES
from npcvoice.edge.app import PATH, EdgeOptions, create_app
from npcvoice.runtime.config import ConfigError, load_service_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="npcvoice edge", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=EDGE_PORT, help="its port")
    parser.add_argument("--gateway", help="the gateway's gRPC address (default: from the suite's config)")
    parser.add_argument("--config", type=Path, help="the suite's YAML configuration file")
    parser.add_argument("--origin", action="append", default=[], help="a page allowed to connect (repeat)")
    parser.add_argument(
        "--max-frame-bytes", type=int, default=1024 * 1024, help="largest frame a client sends"
    )
    parser.add_argument("--tls-cert-file", help="certificate (PEM): serve wss://")
    parser.add_argument("--tls-key-file", help="its private key (PEM)")
    parser.add_argument("--gateway-tls-ca-file", default="", help="CA of the gateway's certificate")
    parser.add_argument("--gateway-tls-server-name", default="", help="the name in the gateway's certificate")
    args = parser.parse_args(argv)
    try:
        suite = argparse.Namespace(config=args.config)
        port = load_service_config(
            "conversation", default_port=SERVICES["conversation"].port, args=suite
        ).server.port
    except ConfigError as error:
        print(f"npcvoice edge: {error}", file=sys.stderr)
        return 2
    options = EdgeOptions(
        gateway=args.gateway or f"127.0.0.1:{port}",
        origins=args.origin,
        max_frame_bytes=args.max_frame_bytes,
        gateway_tls_ca_file=args.gateway_tls_ca_file,
        gateway_tls_server_name=args.gateway_tls_server_name,
    )
    import uvicorn

    scheme = "wss" if args.tls_cert_file else "ws"
    print(f"edge: {scheme}://{args.host}:{args.port}{PATH} (gateway {options.gateway})", flush=True)
    uvicorn.run(
        create_app(options),
        host=args.host,
        port=args.port,
        log_level="warning",
        ws_max_size=options.max_frame_bytes,
        ssl_certfile=args.tls_cert_file,
        ssl_keyfile=args.tls_key_file,
        timeout_graceful_shutdown=5,
    )
    return 0
