"""Where conversation memory lives: one ``redis_url`` for a single Redis, a Redis Cluster or a Redis
watched by Sentinel, and the client each needs.

    redis://[:password@]host:6379/0                 one server (also rediss:// for TLS, unix://)
    redis+cluster://[:password@]host1:6379,host2:6379  a Redis Cluster: any of its nodes, the client
                                                    learns the rest and follows slots as they move
    redis+sentinel://[:password@]host1:26379,host2:26379/mymaster[/0]
                                                    the master Sentinel names ``mymaster``, found again
                                                    after a failover; the password is the master's
                                                    (``?sentinel_password=`` for the sentinels' own)

``rediss+cluster://`` and ``rediss+sentinel://`` speak TLS to the servers. The memory keys of one
conversation share a hash tag, so a cluster keeps them in one slot and a turn's transaction works there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel

from npcvoice.runtime.errors import InvalidArgument

Kind = Literal["standalone", "cluster", "sentinel"]
MemoryClient = aioredis.Redis | aioredis.RedisCluster

_KINDS: dict[str, tuple[Kind, bool]] = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
_DEFAULT_PORTS = {"cluster": 6379, "sentinel": 26379}


@dataclass(frozen=True)
class RedisTarget:
    """A ``redis_url`` taken apart."""

    kind: Kind
    url: str
    hosts: list[tuple[str, int]] = field(default_factory=list)  # cluster nodes or sentinels
    service_name: str = ""  # the master's name at the sentinels
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    """``url`` taken apart, or INVALID_ARGUMENT naming what is wrong with it."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _KINDS:
        if scheme not in ("redis", "rediss", "unix"):
            raise InvalidArgument(
                "redis_url",
                f"scheme must be redis, rediss, unix, redis+cluster or redis+sentinel; got {url!r}",
            )
        return RedisTarget(kind="standalone", url=url)
    kind, tls = _KINDS[scheme]
    parts = urlsplit(url)
    credentials, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    target = RedisTarget(
        kind=kind,
        url=url,
        hosts=[_host(entry, _DEFAULT_PORTS[kind], url) for entry in hostlist.split(",") if entry],
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=parse_qs(parts.query).get("sentinel_password", [None])[0],
        tls=tls,
    )
    if not target.hosts:
        raise InvalidArgument("redis_url", f"names no host: {url!r}")
    if kind == "cluster":
        if path and path != ["0"]:
            raise InvalidArgument("redis_url", f"a Redis Cluster has only database 0; got {url!r}")
        return target
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise InvalidArgument(
            "redis_url", f"expected redis+sentinel://host:port/MASTER_NAME[/DB]; got {url!r}"
        )
    return replace(target, service_name=path[0], db=int(path[1]) if len(path) == 2 else 0)


def _host(entry: str, default_port: int, url: str) -> tuple[str, int]:
    host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", str(default_port))
    if not host or not port.isdigit():
        raise InvalidArgument("redis_url", f"bad host {entry!r} in {url!r} (expected host:port)")
    return host.strip("[]"), int(port)


def sentinel_connection(target: RedisTarget, timeout_s: float | None) -> dict[str, Any]:
    """How to reach the Sentinels themselves (their own password, TLS as the data nodes)."""
    return {"password": target.sentinel_password, "ssl": target.tls, "socket_timeout": timeout_s}


def memory_client(url: str, *, timeout_s: float | None = None) -> MemoryClient:
    """The asyncio client for ``url`` (nothing is connected until the first command)."""
    target = parse_redis_url(url)
    if target.kind == "standalone":
        return aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    if target.kind == "cluster":
        return aioredis.RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
    sentinel = Sentinel(
        target.hosts,
        sentinel_kwargs=sentinel_connection(target, timeout_s),
        ssl=target.tls,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    master: aioredis.Redis = sentinel.master_for(
        target.service_name, db=target.db, username=target.username, password=target.password
    )
    return master
