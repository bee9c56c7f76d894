"""Shared fixtures: a real Redis server, and services hosted by the real runtime on loopback."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from npcvoice.catalog import SERVICES
from npcvoice.redis_server import RedisServer
from npcvoice.runtime.config import ServerSettings
from npcvoice.runtime.ports import free_port
from npcvoice.runtime.server import Registration, ServiceHost

# The playground's fixtures (its server, a headless Chromium) for tests/test_playground*.py.
pytest_plugins = ["tests.support.browser"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PERSONA_DIR = REPO_ROOT / "npc_personas"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


class HostedService:
    """A service started in this process by the runtime, and a channel to it."""

    def __init__(self, host: ServiceHost, channel: grpc.aio.Channel) -> None:
        self.host = host
        self.channel = channel

    def unary(self, method: str) -> Any:
        return self.channel.unary_unary(method)

    def unary_stream(self, method: str) -> Any:
        return self.channel.unary_stream(method)


async def start_service(
    name: str, registration: Registration, options: dict[str, Any] | None = None, **settings: Any
) -> HostedService:
    host = ServiceHost(name, registration, ServerSettings(port=0, **settings), options)
    await host.start()
    return HostedService(host, grpc.aio.insecure_channel(host.address))


@pytest.fixture
async def hosted() -> AsyncIterator[Any]:
    """Call ``await hosted(name, registration, options, **server_settings)``; stopped after the test."""
    started: list[HostedService] = []

    async def start(
        name: str, registration: Registration, options: dict[str, Any] | None = None, **settings: Any
    ) -> HostedService:
        service = await start_service(name, registration, options, **settings)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.channel.close()
        await service.host.stop(grace=0)


async def _serve_for_session(
    name: str, options: dict[str, Any] | None = None
) -> AsyncIterator[HostedService]:
    service = await start_service(name, SERVICES[name].registration(), options)
    yield service
    await service.channel.close()
    await service.host.stop(grace=0)


@pytest.fixture(scope="session")
async def voice_service() -> AsyncIterator[HostedService]:
    """The real voice service with the bundled piper voice, shared by the whole test session."""
    async for service in _serve_for_session("voice"):
        yield service


@pytest.fixture(scope="session")
async def face_service() -> AsyncIterator[HostedService]:
    async for service in _serve_for_session("face"):
        yield service


# Small limits, so that the tests can reach them with a few seconds of audio.
SPEECH_TEST_LIMITS = {
    "max_utterance_s": 4.0,
    "max_stream_s": 20.0,
    "max_chunk_bytes": 65536,
    "max_recognize_s": 10.0,
}


@pytest.fixture(scope="session")
async def speech_service() -> AsyncIterator[HostedService]:
    """The real speech service with the bundled tiny.en model and small limits."""
    async for service in _serve_for_session("speech", SPEECH_TEST_LIMITS):
        yield service


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Holds the replies the dialogue engine begins until ``gate.released`` is set (tests/support/busy)."""
    from npcvoice.dialogue.engine import DialogueEngine
    from tests.support.busy import Gate

    gate = Gate()
    begin = DialogueEngine.begin
    monkeypatch.setattr(DialogueEngine, "begin", lambda self, request: gate.hold(begin(self, request)))
    yield gate
    gate.released.set()  # never leave a worker thread waiting


@pytest.fixture
def held_rest(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Holds the voice's pieces after a reply's first until the next reply starts (tests/support/busy)."""
    from npcvoice.voice.engine import VoiceEngine
    from tests.support.busy import HeldRest

    held = HeldRest()
    synthesize = VoiceEngine.synthesize_piece

    def holding(self: VoiceEngine, text: str, settings: Any, start_sample: int, sentence_index: int) -> Any:
        if threading.current_thread().name.startswith("piper"):  # the voice service's workers, not `speak`
            held.piece(sentence_index)
        return synthesize(self, text, settings, start_sample, sentence_index)

    monkeypatch.setattr(VoiceEngine, "synthesize_piece", holding)
    held.arm()
    yield held
    held.release()  # never leave a worker thread waiting


@pytest.fixture(scope="session")
def speak() -> Any:
    """``speak(text, rate)``: float32 speech from the bundled piper voice, resampled to ``rate``."""
    from npcvoice.voice.engine import SynthesisSettings, VoiceEngine
    from npcvoice.voice.options import VoiceOptions

    engine = VoiceEngine(VoiceOptions())

    def say(text: str, rate: int = 16000) -> Any:
        settings = engine.check(SynthesisSettings(sample_rate=rate))
        return engine.synthesize_piece(text, settings, 0, 0).audio

    return say


@pytest.fixture(scope="session")
def test_persona_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped personas plus the test personas in tests/personas (a canary, an unknown model...)."""
    directory = tmp_path_factory.mktemp("personas")
    for source in [*PERSONA_DIR.glob("*.yaml"), *(REPO_ROOT / "tests" / "personas").glob("*.yaml")]:
        (directory / source.name).write_text(source.read_text())
    return directory


@pytest.fixture(scope="session")
async def dialogue_service(test_persona_dir: Path) -> AsyncIterator[HostedService]:
    """The real dialogue service on the model `./dev prepare-model` built into .models, on the CPU."""
    options = {
        "models_dir": str(REPO_ROOT / ".models"),
        "persona_dir": str(test_persona_dir),
        "device": "cpu",
        "prewarm": False,  # so a test can see a cold first turn
    }
    async for service in _serve_for_session("dialogue", options):
        yield service


@pytest.fixture
async def gateway(
    test_persona_dir: Path,
    redis_server: RedisServer,
    speech_service: HostedService,
    dialogue_service: HostedService,
    voice_service: HostedService,
    face_service: HostedService,
) -> AsyncIterator[HostedService]:
    """The real conversation gateway composing the session's real services, with the test personas."""
    from npcvoice.conversation.registration import REGISTRATION
    from tests.support.conversation import gateway_options

    options = gateway_options(
        test_persona_dir, redis_server, speech_service, dialogue_service, voice_service, face_service
    )
    service = await start_service("conversation", REGISTRATION, options)
    yield service
    await service.channel.close()
    await service.host.stop(grace=0)


class DialogueRequests(list[Any]):
    """The dialogue engine's requests in order: replies, and the prompts prefilled ahead of a line."""

    @property
    def replies(self) -> list[Any]:
        """The requests for a reply (the prefills ahead left out)."""
        return [r for r in self if not r.prefill_only]

    @property
    def prefills(self) -> list[Any]:
        return [r for r in self if r.prefill_only]


@pytest.fixture
def dialogue_requests(monkeypatch: pytest.MonkeyPatch) -> DialogueRequests:
    """Every request the dialogue engine is asked for, as seen by a spy on the real engine (it records
    each request and calls through)."""
    from npcvoice.dialogue.engine import DialogueEngine

    seen = DialogueRequests()
    begin = DialogueEngine.begin

    def spy(self: DialogueEngine, request: Any) -> Any:
        seen.append(request)
        return begin(self, request)

    monkeypatch.setattr(DialogueEngine, "begin", spy)
    return seen
