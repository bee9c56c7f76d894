"""README command one, as a user runs it: `npcvoice up` starts a real Redis and every service as its own
process, each answers the standard gRPC health check with SERVING, Ctrl-C stops them all, and a service or
Redis killed meanwhile comes back while the conversations go on."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import grpc
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.sync.client import connect as websocket_connect

from npcvoice.api.npc.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from npcvoice.catalog import SERVICES
from npcvoice.conversation.gateway import MEMORY_HEALTH
from npcvoice.runtime.health_client import check_health
from npcvoice.runtime.ports import free_port
from tests.conftest import REPO_ROOT, HostedService
from tests.support.conversation import Conversation, config, export


def suite_config(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A configuration file giving every service free ports; and the gRPC ports."""
    ports = {name: free_port() for name in SERVICES}
    config = tmp_path / "suite.yaml"
    sections = {name: {"port": port, "metrics_port": free_port()} for name, port in ports.items()}
    sections["dialogue"]["engine"] = {"openai_port": free_port()}  # type: ignore[assignment]
    config.write_text(yaml.safe_dump(sections))
    return config, ports


def launch(config: Path, data_dir: Path, redis_port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "npcvoice", "up", "--config", str(config), "--data-dir", str(data_dir),
         "--redis-port", str(redis_port), "--playground-port", str(free_port()), "--edge-port", str(free_port()),
         *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ, text=True,
    )  # fmt: skip


def wait_until_all_serving(process: subprocess.Popen[str]) -> str:
    """The launcher's output up to its "All services are SERVING"."""
    output = ""
    deadline = time.monotonic() + 240
    assert process.stdout is not None
    while "All services are SERVING" not in output:
        line = process.stdout.readline()
        assert line or process.poll() is None, f"launcher exited early:\n{output}"
        output += line
        assert time.monotonic() < deadline, f"not SERVING in time:\n{output}"
    return output


def test_up_starts_redis_and_every_service_serving_and_ctrl_c_stops_them(tmp_path):
    config, ports = suite_config(tmp_path)
    redis_port = free_port()
    data_dir = tmp_path / "data"
    process = launch(config, data_dir, redis_port)
    try:
        output = wait_until_all_serving(process)

        for name, port in ports.items():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                request = health_pb2.HealthCheckRequest(service=SERVICES[name].grpc_service)
                assert stub.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING, name

        with grpc.insecure_channel(f"127.0.0.1:{ports['conversation']}") as channel:
            npcs = conversation_pb2_grpc.ConversationServiceStub(channel).ListNpcs(
                conversation_pb2.ListNpcsRequest(), timeout=5
            )
        assert {n.npc_id for n in npcs.npcs} == {"blacksmith_hilda", "guard_captain_vael", "innkeeper_tobin"}
        # The writers' page is printed with the other addresses, and lists the gateway's NPCs.
        [page] = re.findall(r"playground +(http://127\.0\.0\.1:\d+/)", output)
        with urllib.request.urlopen(page + "api/npcs", timeout=10) as response:
            assert "blacksmith_hilda" in response.read().decode()
        # So is the dialogue service's OpenAI-compatible endpoint, whose models are the personas.
        [openai_api] = re.findall(r"OpenAI API +(http://127\.0\.0\.1:\d+/v1)", output)
        with urllib.request.urlopen(openai_api + "/models", timeout=10) as response:
            assert "innkeeper_tobin" in response.read().decode()
        # And the WebSocket edge, which carries a conversation.
        [edge] = re.findall(r"WebSocket +(ws://127\.0\.0\.1:\d+/v1/converse)", output)
        with websocket_connect(edge) as websocket:
            start = conversation_pb2.ConverseConfig(npc_id="innkeeper_tobin", player_id="suite-ws")
            websocket.send(conversation_pb2.ConverseRequest(config=start).SerializeToString())
            first = websocket.recv(timeout=30)
            assert isinstance(first, bytes) and conversation_pb2.ConverseResponse.FromString(first).HasField(
                "started"
            )

        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output + rest
        assert "stopped." in rest
        assert "Traceback" not in output + rest
        assert list(data_dir.glob("redis/appendonly*")), "Redis ran without its append-only file"
        for port in ports.values():
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    still_up = True
                except grpc.RpcError:
                    still_up = False
            assert not still_up, f"a service on port {port} outlived Ctrl-C"
    finally:
        if process.poll() is None:
            process.kill()


class RunningSuite:
    """`npcvoice up` running in the background, its output collected as it comes."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        config_file, self.ports = suite_config(tmp_path)
        self.redis_port = free_port()
        self.data_dir = tmp_path / "data"
        self.launcher = launch(config_file, self.data_dir, self.redis_port, *extra)
        self.output = [wait_until_all_serving(self.launcher)]
        # The services' logs pass through the launcher: keep reading, or its pipe fills and all wait.
        threading.Thread(target=lambda: self.output.extend(self.launcher.stdout or []), daemon=True).start()
        # What the helpers of test_conversation.py use of a service: its channel.
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.ports['conversation']}")
        self.gateway = cast(HostedService, SimpleNamespace(channel=channel))
        self.redis = redis.Redis(port=self.redis_port)

    def said(self, text: str) -> bool:
        return text in "".join(self.output)

    def child_pid(self, *command_words: str) -> int:
        """The pid of the launcher's child whose command line holds ``command_words`` in a row."""
        needle = "\0".join(command_words)
        for entry in Path("/proc").iterdir():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_text()
            except (OSError, ValueError, IndexError):
                continue
            if parent == self.launcher.pid and needle in command:
                return int(entry.name)
        raise AssertionError(f"the launcher has no child running {' '.join(command_words)}")

    @contextlib.contextmanager
    def launcher_held(self) -> Iterator[None]:
        """Hold the launcher (SIGSTOP), so that what it would restart stays down while the test looks."""
        os.kill(self.launcher.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.launcher.pid, signal.SIGCONT)

    async def memory_is(self, status: int) -> bool:
        """Whether the gateway's memory health (Redis, or its replay queue) has ``status``."""
        request = health_pb2.HealthCheckRequest(service=MEMORY_HEALTH)
        return (
            await health_pb2_grpc.HealthStub(self.gateway.channel).Check(request, timeout=5)
        ).status == status

    async def close(self) -> None:
        if self.launcher.poll() is None:  # failed half-way: stop it, and so its children
            self.launcher.terminate()
            self.launcher.wait(60)
        await self.gateway.channel.close()
        self.redis.close()


async def until(condition: Callable[[], object], what: str, timeout_s: float = 90.0) -> None:
    """Poll ``condition`` (its result awaited if it is a coroutine) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}"
        await asyncio.sleep(0.1)


async def test_up_restarts_a_killed_service_and_a_killed_redis_while_conversations_go_on(
    tmp_path, test_persona_dir
):
    suite = RunningSuite(tmp_path, "--personas", str(test_persona_dir))
    try:
        npc = "courier_quick_test"  # replies of one short sentence
        talking = Conversation(suite.gateway, config("player-up", npc))  # spoken replies: needs voice
        texting = Conversation(
            suite.gateway, config("player-up-text", npc, reply_mode=conversation_pb2.REPLY_MODE_TEXT)
        )
        acknowledged: list[str] = []
        talking.send(text="Hello! Any letters for me?")
        acknowledged.append((await talking.turn()).end.player_text)

        voice_pid = suite.child_pid("serve", "voice")
        with suite.launcher_held():
            os.kill(voice_pid, signal.SIGKILL)
            voice = f"127.0.0.1:{suite.ports['voice']}"
            await until(lambda: check_health(voice) != "SERVING", "voice to be down")
            texting.send(text="Is the road to Vaelmoor safe?")
            text_turn = await texting.turn()  # a conversation that does not need voice goes on
            assert text_turn.text and not text_turn.audio
        await until(lambda: suite.said("voice SERVING again"), "the launcher to restart voice")
        assert suite.child_pid("serve", "voice") != voice_pid
        talking.send(text="Can you take a letter to Vaelmoor?")
        spoken = await talking.turn()
        assert spoken.audio and not spoken.end.interrupted
        acknowledged.append(spoken.end.player_text)

        redis_pid = suite.redis.info("server")["process_id"]
        with suite.launcher_held():
            os.kill(redis_pid, signal.SIGKILL)
            talking.send(text="Redis is gone, but do you remember me?")
            acknowledged.append((await talking.turn()).end.player_text)  # queued by the gateway
            assert await suite.memory_is(health_pb2.HealthCheckResponse.NOT_SERVING)
        await until(lambda: suite.said("redis SERVING again"), "the launcher to restart Redis")
        serving = health_pb2.HealthCheckResponse.SERVING
        await until(lambda: suite.memory_is(serving), "the gateway to write its queue into Redis")
        talking.send(text="Then goodbye for now.")
        acknowledged.append((await talking.turn()).end.player_text)
        await talking.close()
        await texting.close()

        stored = await export(suite.gateway, "player-up", npc)
        assert [t.text for t in stored.turns if t.role == "player"] == acknowledged
        texted = await export(suite.gateway, "player-up-text", npc)
        assert [t.text for t in texted.turns if t.role == "player"] == [text_turn.end.player_text]
        assert suite.redis.info("server")["process_id"] != redis_pid
        assert suite.redis.config_get("dir")["dir"] == str((suite.data_dir / "redis").resolve())

        suite.launcher.send_signal(signal.SIGINT)
        assert suite.launcher.wait(60) == 0
        assert suite.said("voice was killed by SIGKILL") and suite.said("redis was killed by SIGKILL")
        assert not suite.said("Traceback")
    finally:
        await suite.close()
