"""Whether a TCP port can be listened on, asked before anything slow starts, so that a port in use is
reported at once and in words instead of after a model load, as a bind error deep in gRPC or Redis.

Only a hint: another process may take the port between this check and the real bind, which must still
handle failure. The probe sets SO_REUSEADDR as servers do, so a port left in TIME_WAIT by a process that
just exited counts as free (it is: a restarted server can bind it).
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class ListenProblem:
    host: str
    port: int
    error: OSError

    @property
    def in_use(self) -> bool:
        return self.error.errno == errno.EADDRINUSE

    def __str__(self) -> str:
        host, port, error = self.host, self.port, self.error
        if isinstance(error, socket.gaierror):
            return f"{host} is not a usable address ({error.strerror})"
        if self.in_use:
            return f"port {port} on {host} is already in use"
        if error.errno == errno.EACCES:
            return f"port {port} on {host} is not allowed to this user (below 1024 needs privileges)"
        if error.errno == errno.EADDRNOTAVAIL:
            return f"{host} is not an address of this machine"
        return f"cannot listen on {host}:{port}: {error.strerror}"


def listen_problem(host: str, port: int) -> ListenProblem | None:
    """What listening on ``host:port`` would meet now, or None if it would work."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return ListenProblem(host, port, exc)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return ListenProblem(host, port, exc)
    return None


# Ports handed out by free_port in this process, never handed out twice.
_HANDED_OUT: set[int] = set()
# Below every common ephemeral range (Linux 32768-60999, macOS and Windows 49152-65535): a port picked
# here cannot be taken meanwhile by the source port of some process's outgoing connection, as one from the
# kernel's bind(0) can before the server that was meant to have it starts.
_FREE_PORT_RANGE = (20000, 32767)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range, for a server started soon after."""
    low, high = _FREE_PORT_RANGE
    for _ in range(200):
        port = random.randint(low, high)
        if port not in _HANDED_OUT and listen_problem(host, port) is None:
            _HANDED_OUT.add(port)
            return port
    raise OSError(errno.EADDRINUSE, f"no free port found on {host} between {low} and {high}")
