"""Hybrid dialogue (#27): a larger model behind the OpenAI protocol answers a persona, or takes its hard
turns; and the dialogue service's own OpenAI-compatible endpoint.

Real servers throughout: another dialogue service as its own process serving its OpenAI endpoint (the
larger model here is the same small one: what is tested is the plumbing, not the wit), and a scripted
OpenAI-compatible server process whose text the test chooses (tests/support/scripted_openai.py) where
the test needs a reply the small model would not write (tags, hygiene, secrets) or a server that dies.
The decision logic (signals, breaker, request mapping) is tested without a network at the top.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from openai import AsyncOpenAI, AuthenticationError, BadRequestError, NotFoundError

from npcvoice.api.npc.dialogue.v1 import dialogue_pb2, dialogue_pb2_grpc
from npcvoice.dialogue.hybrid import CONTINUE, draft_reasons, early_reasons
from npcvoice.dialogue.openai_api import turn_request
from npcvoice.dialogue.options import BUNDLED_MODEL_ID
from npcvoice.dialogue.prompt import MemoryView
from npcvoice.dialogue.registration import REGISTRATION
from npcvoice.dialogue.remote import CircuitBreaker
from npcvoice.dialogue.reply import ReplyFilter, Sentence
from npcvoice.dialogue.types import TurnRequest
from npcvoice.personas import load_persona
from npcvoice.runtime.errors import InvalidArgument
from npcvoice.runtime.ports import free_port
from npcvoice.turns import Turn
from tests.conftest import PERSONA_DIR, REPO_ROOT, start_service
from tests.support.processes import serve
from tests.support.scripted_openai import ScriptedServer
from tests.test_dialogue_text import RAW

HILDA = load_persona(PERSONA_DIR / "blacksmith_hilda.yaml")
REMOTE_KEY = "remote-key"


def request(line: str, **memory: Any) -> TurnRequest:
    return TurnRequest("blacksmith_hilda", line, memory=MemoryView(**memory))


# --- the decision logic, no network -------------------------------------------------------------------


def test_the_breaker_opens_after_failures_in_a_row_and_one_trial_decides_when_it_is_back():
    now = [0.0]
    breaker = CircuitBreaker(failures=2, open_s=10, clock=lambda: now[0])
    breaker.failed()
    breaker.succeeded()  # a success in between: failures are counted in a row
    breaker.failed()
    assert breaker.allow() and not breaker.open
    breaker.failed()
    assert breaker.open and not breaker.allow()
    now[0] = 10.5
    assert breaker.allow()  # half-open: one trial call
    assert not breaker.allow()  # and only one
    breaker.failed()
    assert breaker.open and not breaker.allow()
    now[0] = 21.0
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.open and breaker.allow() and breaker.allow()


def test_a_listed_topic_or_a_long_multi_part_line_escalates_at_once():
    hard = HILDA.model_copy(
        update={"dialogue": HILDA.dialogue.model_copy(update={"escalate": "hard", "escalate_to": "big",
                                                                 "escalate_topics": ["dragon", "old war"]})}
    )  # fmt: skip
    assert early_reasons(hard, request("Tell me of the Dragon.")) == ["topic"]
    assert early_reasons(hard, request("What of the old war?")) == ["topic"]
    assert early_reasons(hard, request("Do you sell dragonglass?")) == []  # whole words only
    assert early_reasons(hard, request("Can you fix this? And how much? And when?")) == ["long"]
    assert early_reasons(HILDA, request("Can you fix this? And how much?")) == ["long"]
    always = hard.model_copy(update={"dialogue": hard.dialogue.model_copy(update={"escalate": "always"})})
    assert early_reasons(always, request("Hello.")) == ["always"]


def test_an_opening_without_the_lore_or_the_fact_asked_for_escalates():
    lore = HILDA.lore[0]
    question = f"What do you know about the {lore.keywords[0]}?"
    answer_word = next(w for w in lore.text.split() if len(w) > 4 and w.lower() not in question.lower())
    assert draft_reasons(HILDA, request(question), "Ah, that old story,", 0.9) == ["lore"]
    assert draft_reasons(HILDA, request(question), f"Ah, {answer_word.strip('.,')},", 0.9) == []
    told = [Turn("player", "My name is Aric and I trade in wool."), Turn("npc", "Welcome.")]
    asked = request("Do you remember my name?", recent_turns=told)
    assert draft_reasons(HILDA, asked, "Of course I do,", 0.9) == ["memory"]
    assert draft_reasons(HILDA, asked, "Aric, isn't it,", 0.9) == []
    assert draft_reasons(HILDA, request("Nice day."), "It is,", 0.1) == ["unsure"]
    assert draft_reasons(HILDA, request("Nice day."), "It is,", 0.9) == []


def test_a_continuing_writer_drops_a_repeat_of_the_opening_and_numbers_on():
    small = ReplyFilter(HILDA, first_clause=True)
    opening = [e for e in small.feed("Ah, the north gate, ") if isinstance(e, Sentence)]
    assert [s.text for s in opening] == ["Ah, the north gate,"]
    going_on = small.continuation()
    events = going_on.feed("Ah, the north gate, ") + going_on.feed("it closes at dusk. ") + going_on.finish()
    assert [(s.index, s.text) for s in events if isinstance(s, Sentence)] == [(1, "it closes at dusk.")]
    assert going_on.text == "Ah, the north gate, it closes at dusk."
    echoing = small.continuation(["begun your reply"])
    assert echoing.feed("You've already begun your reply, I see. ") == []  # the request, echoed


def test_a_chat_completions_body_becomes_a_turn_with_its_memory():
    body: dict[str, Any] = {
        "model": "blacksmith_hilda",
        "messages": [
            {"role": "system", "content": "You are a pirate."},  # the persona is the system prompt
            {"role": "user", "content": "I'm Aric."},
            {"role": "assistant", "content": [{"type": "text", "text": "Welcome, Aric."}]},
            {"role": "user", "content": "What's my name?"},
        ],
        "user": "conv-1",
        "max_tokens": 40,
        "stop": "\n",
        "npcvoice": {"player_name": "Aric", "player_facts": ["trades wool"], "affinity": 0.5},
    }
    turn = turn_request(body)
    assert turn.player_text == "What's my name?" and turn.conversation_id == "conv-1"
    assert [(t.role, t.text) for t in turn.memory.recent_turns] == [
        ("player", "I'm Aric."),
        ("npc", "Welcome, Aric."),
    ]
    assert turn.memory.player_facts == ["trades wool"] and turn.memory.affinity == 0.5
    assert turn.sampling.max_tokens == 40 and turn.sampling.stop == ("\n",) and turn.player_name == "Aric"
    for broken, field in [
        ({**body, "n": 2}, "n"),
        ({**body, "messages": body["messages"][:3]}, "messages"),  # ends with the NPC's line
        ({**body, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({**body, "messages": [{"role": "user", "content": 7}]}, "messages[0].content"),
        ({**body, "temperature": "hot"}, "temperature"),
        ({**body, "npcvoice": {"trust": "lots"}}, "npcvoice.trust"),
    ]:
        with pytest.raises(InvalidArgument) as raised:
            turn_request(broken)
        assert raised.value.field == field


# --- real servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = ScriptedServer(tmp_path_factory.mktemp("scripted"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def npc_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Another dialogue service, as its own process, serving the shipped personas over its OpenAI endpoint
    (and gRPC), with an API key; and Hilda on another model (the bundled one), as a studio's larger model
    would be: the same model with the same aids writes the same answer as the small one's opening, which
    the hybrid drops as a repeat ("Forty years, and a dragon." after "A dragon, forty years ago.")."""
    personas = tmp_path_factory.mktemp("npc-endpoint-personas")
    for path in PERSONA_DIR.glob("*.yaml"):
        shutil.copy(path, personas / path.name)
    _persona(personas, PERSONA_DIR / "blacksmith_hilda.yaml", "hilda_bundled", model=BUNDLED_MODEL_ID)
    grpc_port, http_port = free_port(), free_port()
    options = {"models_dir": REPO_ROOT / ".models", "persona_dir": personas, "device": "cpu",
               "prewarm": "false", "openai_port": http_port}  # fmt: skip
    process = serve("dialogue", grpc_port, options, "--metrics-port", "0", "--api-keys", REMOTE_KEY)
    yield {"grpc": f"127.0.0.1:{grpc_port}", "base_url": f"http://127.0.0.1:{http_port}/v1"}
    process.kill()
    process.wait()


def _persona(directory: Path, source: Path, new_id: str, **dialogue: Any) -> None:
    document = yaml.safe_load(source.read_text())
    document["id"] = new_id
    document["dialogue"] = {**document.get("dialogue", {}), **dialogue}
    (directory / f"{new_id}.yaml").write_text(yaml.safe_dump(document))


@pytest.fixture(scope="module")
def hybrid_personas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Personas answered by the scripted server, or escalating to it or to the other dialogue service."""
    personas = tmp_path_factory.mktemp("hybrid-personas")
    hilda = PERSONA_DIR / "blacksmith_hilda.yaml"
    archivist = REPO_ROOT / "tests/personas/archivist_secrets_test.yaml"
    _persona(personas, hilda, "hilda_scripted", model="scripted", max_sentences=4)
    _persona(personas, archivist, "archivist_scripted", model="scripted")
    _persona(personas, hilda, "hilda_always", escalate="always", escalate_to="scripted")
    _persona(personas, hilda, "hilda_dead_end", model="nowhere")
    _persona(personas, hilda, "hilda_topics", escalate="hard", escalate_to="npc",
             escalate_topics=["dragon"], escalate_below=0.0, temperature=0.0)  # fmt: skip
    return personas


@pytest.fixture(scope="module")
async def hybrid(
    tmp_path_factory: pytest.TempPathFactory,
    hybrid_personas: Path,
    scripted: ScriptedServer,
    npc_endpoint: Any,
) -> Any:
    """The dialogue service under test (in this process), with the remote models those personas name."""
    personas = hybrid_personas
    directory = tmp_path_factory.mktemp("hybrid")
    key_file = directory / "remote.key"
    key_file.write_text(REMOTE_KEY + "\n")
    options = {
        "models_dir": str(REPO_ROOT / ".models"),
        "persona_dir": str(personas),
        "device": "cpu",
        "prewarm": False,
        "remote_models": {
            "scripted": {"base_url": scripted.base_url, "model": "scripted", "first_text_timeout_s": 10},
            "nowhere": {
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "model": "x",
                "breaker_failures": 2,
                "breaker_open_s": 600,
            },
            "npc": {
                "base_url": npc_endpoint["base_url"],
                "model": "hilda_bundled",
                "api_key_file": str(key_file),
                "first_text_timeout_s": 60,
            },
        },
    }
    service = await start_service("dialogue", REGISTRATION, options)
    yield service
    await service.channel.close()
    await service.host.stop(grace=0)


async def generate(service: Any, persona: str, line: str, **fields: Any) -> dict[str, Any]:
    stub = dialogue_pb2_grpc.DialogueServiceStub(service.channel)
    out: dict[str, Any] = {"sentences": [], "emotions": [], "actions": []}
    call = stub.Generate(dialogue_pb2.GenerateRequest(persona_id=persona, player_text=line, **fields))
    async for response in call:
        kind = response.WhichOneof("event")
        if kind == "sentence":
            out["sentences"].append((response.sentence.index, response.sentence.text))
        elif kind == "emotion":
            out["emotions"].append(response.emotion.emotion)
        elif kind == "action":
            out["actions"].append((response.action.name, dict(response.action.parameters)))
        elif kind == "summary":
            out["summary"] = response.summary
    return out


async def test_remote_text_gets_the_same_hygiene_and_tag_checks_as_local_text(hybrid, scripted):
    """tests/test_dialogue_text.py's raw output, as a larger model streams it."""
    scripted.script(reply=RAW, chunk=5)
    out = await generate(hybrid, "hilda_scripted", "Can you fix my sword?")
    assert out["summary"].text == "Well met, traveller! I can fix that blade for you. Visit today. Bye"
    assert out["emotions"] == ["joy"]  # "smug" is not Hilda's
    assert out["actions"] == [("repair_item", {"item": "sword", "price": "5"})]  # fly_away is not hers
    assert out["summary"].answered_by == "scripted" and list(out["summary"].escalation) == ["remote"]
    assert out["summary"].dropped_events == 2 and out["summary"].remote_tokens > 0


async def test_a_remote_model_never_tells_a_secret_or_recites_the_persona(hybrid, scripted):
    scripted.script(reply="The password is swordfish. The duke poisoned the king, you know. "
                          "Maud keeps the archive under the keep of Emberfall. Mind the dust.")  # fmt: skip
    out = await generate(hybrid, "archivist_scripted", "Tell me everything.")
    assert out["summary"].text == "Mind the dust."


async def test_the_remote_model_sees_the_persona_lore_and_memory(hybrid, scripted):
    scripted.script(reply="[emotion: neutral] Aric, of course.")
    lore = HILDA.lore[0]
    memory = dialogue_pb2.Memory(
        recent_turns=[dialogue_pb2.Turn(role=dialogue_pb2.ROLE_PLAYER, text="My name is Aric.")],
        player_facts=["trades in wool"],
    )
    await generate(hybrid, "hilda_scripted", f"What of the {lore.keywords[0]}?", memory=memory)
    messages = scripted.requests()[-1]["messages"]
    assert messages[0]["role"] == "system" and HILDA.description in messages[0]["content"]
    assert {"role": "user", "content": "My name is Aric."} in messages
    assert lore.text in messages[-1]["content"] and "trades in wool" in messages[-1]["content"]


async def test_escalated_turns_open_with_the_small_model_and_the_larger_one_goes_on(hybrid, scripted):
    """escalate: always. The larger model is slow to start (the request sent at once waits 30 s), so the
    small model's opening clause comes first and the larger model is asked to go on from it."""
    scripted.script(reply="It shuts at dusk. Mind the guards.", delays=[30, 0])
    before = len(scripted.requests())
    out = await generate(hybrid, "hilda_always", "When does the north gate close?", first_clause=True)
    summary = out["summary"]
    assert summary.answered_by == "scripted" and list(summary.escalation) == ["always"]
    (_, opening), *rest = out["sentences"]
    assert rest == [(1, "It shuts at dusk."), (2, "Mind the guards.")]
    sent = scripted.requests()[before:]
    assert len(sent) == 2  # asked at once, then asked to go on from the opening
    assert CONTINUE.format(cover=opening) in sent[1]["messages"][-1]["content"]
    assert summary.text == f"{opening} It shuts at dusk. Mind the guards."


async def test_a_larger_model_that_answers_first_answers_alone(hybrid, scripted):
    scripted.script(reply="[emotion: joy] Dusk, friend. Always dusk.", delays=[0])
    out = await generate(hybrid, "hilda_always", "When does the north gate close?", first_clause=True)
    assert out["summary"].answered_by == "scripted"
    assert out["sentences"] == [(0, "Dusk, friend."), (1, "Always dusk.")]


async def test_a_dead_endpoint_trips_its_breaker_and_the_small_model_answers(hybrid):
    failures = []
    for _ in range(3):
        out = await generate(hybrid, "hilda_dead_end", "Good morning!")
        assert out["sentences"] and out["summary"].answered_by == "npc-smollm2-135m"
        failures.append(out["summary"].remote_failure)
    assert failures == ["connection", "connection", "breaker_open"]


async def test_escalation_by_topic_goes_to_another_dialogue_service_over_its_openai_endpoint(hybrid):
    """The persona asks for temperature 0, which the remote request carries too: sampled at 0.7, the other
    service's one-sentence reply sometimes only repeated the opening, was dropped as such, and the small
    model went on (a right fallback, but then this test could not see the remote answer)."""
    plain = await generate(hybrid, "hilda_topics", "Good morning! What do you make?")
    assert plain["summary"].answered_by == "npc-smollm2-135m" and not plain["summary"].escalation
    out = await generate(hybrid, "hilda_topics", "Have you ever seen a dragon?")
    assert list(out["summary"].escalation) == ["topic"]
    assert out["summary"].answered_by == "npc" and out["summary"].remote_tokens > 0, out
    assert [index for index, _ in out["sentences"]] == list(range(len(out["sentences"])))


async def test_the_openai_client_streams_a_persona_reply_with_its_memory(npc_endpoint):
    """The official client against the service's own endpoint: the same reply as its gRPC Generate with the
    same memory (the tuned model takes its likeliest words), and the persona's emotion with it."""
    told = [("user", "My name is Aric, and I trade in wool."), ("assistant", "Welcome to my forge, Aric.")]
    client = AsyncOpenAI(base_url=npc_endpoint["base_url"], api_key=REMOTE_KEY)
    messages: Any = [
        *({"role": r, "content": t} for r, t in told),
        {"role": "user", "content": "What's my name?"},
    ]
    stream = await client.chat.completions.create(
        model="blacksmith_hilda",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    extras: Any = None
    usage: Any = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            extras = (chunk.model_extra or {})["npcvoice"]
        usage = chunk.usage or usage
    await client.close()
    roles = {"user": dialogue_pb2.ROLE_PLAYER, "assistant": dialogue_pb2.ROLE_NPC}
    memory = dialogue_pb2.Memory(recent_turns=[dialogue_pb2.Turn(role=roles[r], text=t) for r, t in told])
    async with grpc.aio.insecure_channel(npc_endpoint["grpc"]) as channel:
        stub = dialogue_pb2_grpc.DialogueServiceStub(channel)
        call = stub.Generate(
            dialogue_pb2.GenerateRequest(
                persona_id="blacksmith_hilda", player_text="What's my name?", memory=memory
            ),
            metadata=[("authorization", f"Bearer {REMOTE_KEY}")],
        )
        summary = [r.summary async for r in call if r.WhichOneof("event") == "summary"].pop()
    assert "".join(pieces) == summary.text and summary.text
    assert extras["emotions"] and set(extras["emotions"]) <= set(HILDA.emotions)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


async def test_the_openai_endpoint_answers_errors_in_openai_shape(npc_endpoint):
    client = AsyncOpenAI(base_url=npc_endpoint["base_url"], api_key=REMOTE_KEY, max_retries=0)
    with pytest.raises(NotFoundError, match="nobody_here"):
        await client.chat.completions.create(
            model="nobody_here", messages=[{"role": "user", "content": "Hi"}]
        )
    with pytest.raises(BadRequestError, match="player_text"):
        await client.chat.completions.create(
            model="blacksmith_hilda", messages=[{"role": "user", "content": " "}]
        )
    listed = [m.id async for m in client.models.list()]
    assert set(listed) == {p.stem for p in PERSONA_DIR.glob("*.yaml")} | {"hilda_bundled"}
    await client.close()
    wrong = AsyncOpenAI(base_url=npc_endpoint["base_url"], api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError, match="invalid API key"):
        await wrong.chat.completions.create(
            model="blacksmith_hilda", messages=[{"role": "user", "content": "Hi"}]
        )
    await wrong.close()


async def test_a_remote_killed_mid_turn_leaves_the_small_model_to_answer(hybrid, scripted, tmp_path):
    """The scripted server process exits after its first piece (no sentence finished yet)."""
    scripted.script(reply="[emotion: joy] Well, you see, the thing about that is", chunk=10, die_after=1)
    try:
        out = await generate(hybrid, "hilda_scripted", "Good morning!")
        assert scripted.process is not None and scripted.process.wait(timeout=10) == 1  # it did die
        summary = out["summary"]
        assert summary.answered_by == "npc-smollm2-135m" and summary.remote_failure == "connection"
        assert summary.text and "thing about" not in summary.text
        assert [i for i, _ in out["sentences"]] == list(range(len(out["sentences"])))
    finally:
        scripted.script(reply="")
        scripted.start()  # back for the tests after this one


async def test_a_remote_killed_mid_turn_loses_nothing_of_the_conversation(
    hosted, hybrid, hybrid_personas, scripted, redis_server, speech_service, voice_service, face_service
):
    """Through the gateway: the larger model dies mid-stream, the small model answers, and memory holds
    the player's line and the reply the player heard, once, and nothing of the dead stream."""
    from npcvoice.conversation.registration import REGISTRATION as GATEWAY
    from tests.support.conversation import Conversation, config, export, gateway_options

    options = gateway_options(
        hybrid_personas, redis_server, speech_service, hybrid, voice_service, face_service
    )
    gateway = await hosted("conversation", GATEWAY, options)
    scripted.script(reply="[emotion: joy] Well now, the thing about swords is", chunk=12, die_after=1)
    try:
        conversation = Conversation(gateway, config("killed-remote", npc="hilda_scripted"))
        conversation.send(text="Good morning! Can you sharpen my sword?")
        out = await conversation.turn()
        assert scripted.process is not None and scripted.process.wait(timeout=10) == 1
        assert out.text and out.audio and "thing about swords" not in out.text
        assert out.end.answered_by == "npc-smollm2-135m" and list(out.end.escalation) == ["remote"]
        await conversation.close()
    finally:
        scripted.script(reply="")
        scripted.start()
    snapshot = await export(gateway, "killed-remote", "hilda_scripted")
    said = [(t.role, t.text) for t in snapshot.turns]
    assert said == [("player", "Good morning! Can you sharpen my sword?"), ("npc", out.text)]
