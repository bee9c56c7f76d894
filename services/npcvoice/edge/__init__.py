"""The WebSocket edge: the conversation (``Converse``) for engines and pages that cannot speak gRPC."""
