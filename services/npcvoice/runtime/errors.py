"""Errors that domain code raises; the runtime's interceptor turns them into gRPC statuses.

Domain code raises these instead of touching gRPC, so engines stay testable without a network and every
client sees the same, specific status for the same kind of problem.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base for errors a client is meant to see. The message is sent as the status details."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is wrong. The message names the field and the limit it broke."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(ServiceError):
    """A persona, voice, model or NPC that the request names does not exist."""

    def __init__(self, kind: str, name: str, known: list[str] | None = None) -> None:
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"{kind} {name!r} not found{hint}")


class ResourceExhausted(ServiceError):
    """The server is at a limit (workers, memory, queue); the client may retry later."""


class FailedPrecondition(ServiceError):
    """The request is valid but cannot be served in the current state (e.g. audio before config)."""


class Unavailable(ServiceError):
    """A service this one depends on is down or did not answer in time."""
