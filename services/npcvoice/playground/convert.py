"""Memory snapshots as the page's JSON, and back (the conversation's messages go as the edge's JSON)."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from npcvoice.api.npc.conversation.v1 import conversation_pb2
from npcvoice.runtime.errors import InvalidArgument


def to_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def snapshot_to_dict(snapshot: conversation_pb2.MemorySnapshot) -> dict[str, Any]:
    return to_dict(snapshot)


def snapshot_from_dict(data: Any) -> conversation_pb2.MemorySnapshot:
    """A snapshot the writer imports (an exported file, maybe edited by hand); the gateway validates it."""
    if not isinstance(data, dict):
        raise InvalidArgument("snapshot", "must be a JSON object, as the export writes it")
    try:
        return ParseDict(data, conversation_pb2.MemorySnapshot())
    except ParseError as error:
        raise InvalidArgument("snapshot", str(error)) from error
