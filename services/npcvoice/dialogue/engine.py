"""The dialogue engine: a persona's reply from a small language model on onnxruntime-genai.

Domain code only (no protobuf): a request becomes a ``Generation`` whose blocking steps the service runs
in worker threads, one prompt chunk or one token at a time, so several conversations interleave and a
cancelled reply stops at the next token.

Second turns are fast because a conversation keeps its generator (and so its KV cache) between turns:
the new prompt is compared token by token with what the generator already holds, the generator is
rewound to the first difference and only the rest is prefilled. Past turns are written into the prompt
exactly as they were the first time (the player's line with the context it came with, the NPC's raw
output with its tags), so the shared prefix reaches the newest line. Tokens are picked here from the
logits (see ``sampling``), which lets every turn bring its own sampling settings to a reused generator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram

from npcvoice.dialogue.cache import Conversation, ConversationCache
from npcvoice.dialogue.options import BUNDLED_MODEL_ID, DialogueOptions
from npcvoice.dialogue.prompt import MemoryView, Message, build_messages, persona_core
from npcvoice.dialogue.reply import ReplyEvent, ReplyFilter
from npcvoice.dialogue.sampling import Sampler, SamplingSettings, StopMatcher, check_sampling
from npcvoice.personas.loader import PersonaStore
from npcvoice.personas.schema import Persona
from npcvoice.runtime.errors import InvalidArgument, NotFound
from npcvoice.runtime.providers import Device, pick_device
from npcvoice.turns import Turn, player_facts

log = logging.getLogger("npcvoice.dialogue")

PROMPT_TOKENS = Counter("npcvoice_dialogue_prompt_tokens_total", "Prompt tokens.", ["source"])
COMPLETION_TOKENS = Counter("npcvoice_dialogue_completion_tokens_total", "Tokens generated.")
DROPPED_EVENTS = Counter(
    "npcvoice_dialogue_dropped_events_total", "Emotions and actions the persona does not declare."
)
WARM_PREFIXES = Counter(
    "npcvoice_dialogue_warm_prefixes_total",
    "Persona prompts prefilled ahead, and taken by new conversations.",
    ["event", "persona"],
)
FIRST_TOKEN = Histogram(
    "npcvoice_dialogue_time_to_first_token_seconds",
    "From request to first generated token.",
    ["cached"],
    buckets=(0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 4.0, 8.0),
)

MAX_CONVERSATION_ID_CHARS = 256
MAX_PLAYER_NAME_CHARS = 80
MAX_MEMORY_TURNS = 200
MAX_PLAYER_FACTS = 100
SUMMARY_TOKENS = 96
WARM_CHUNK = 32

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclass(frozen=True)
class SamplingOverrides:
    """What a request changes of the persona's sampling; None keeps the persona's value."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnRequest:
    persona_id: str
    player_text: str
    conversation_id: str = ""
    memory: MemoryView = field(default_factory=MemoryView)
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    player_name: str = ""
    first_clause: bool = False  # release the first clause as its own sentence (for early speech)


@dataclass(frozen=True)
class GenerationSummary:
    text: str
    finish_reason: str
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float
    total_s: float
    decode_tokens_per_s: float
    dropped_events: int
    execution_provider: str


@dataclass
class LoadedModel:
    model_id: str
    folder: Path
    model: Any  # onnxruntime_genai.Model
    tokenizer: Any  # onnxruntime_genai.Tokenizer
    provider: str
    bytes_per_token: int
    context_length: int
    end_ids: frozenset[int]

    def prompt_ids(self, messages: list[Message], reply_next: bool = True) -> list[int]:
        prompt = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=reply_next)
        return [int(t) for t in self.tokenizer.encode(prompt)]

    def new_generator(self, max_length: int) -> Any:
        import onnxruntime_genai as og

        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length)
        return og.Generator(self.model, params)


def resolve_device(device: str) -> Device:
    """ "cpu" or "cuda" for the configured device; "cuda" insists on a CUDA build of onnxruntime-genai."""
    import onnxruntime_genai as og

    lacking = "this onnxruntime-genai has no CUDA support: install onnxruntime-genai-cuda"
    return pick_device(device, og.is_cuda_available, lacking)


def bundled_model_folder(models_dir: Path, device: str) -> Path:
    """The prepared folder of the bundled model: the CUDA variant on CUDA when built, else the CPU one."""
    from npcvoice.dialogue.prepare import MANIFEST, bundled_gguf, file_hash, model_folder

    gguf = bundled_gguf()
    digest = file_hash(gguf)
    candidates = [model_folder(gguf, models_dir, d, digest) for d in (device, "cpu")]
    for folder in candidates:
        if (folder / MANIFEST).exists():
            return folder
    raise RuntimeError(
        f"the dialogue model is not prepared: expected {candidates[0]}. "
        f"Run `./dev prepare-model` (or `npcvoice prepare-model --models-dir {models_dir}`) once."
    )


def load_model(
    model_id: str, folder: Path, device: str, cuda_graph: bool = False, threads: int = 0
) -> LoadedModel:
    import onnxruntime_genai as og

    if not (folder / "genai_config.json").exists():
        raise RuntimeError(f"model {model_id!r}: {folder} has no genai_config.json")
    config = og.Config(str(folder))
    if threads:
        config.overlay(
            json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}})
        )
    config.clear_providers()
    if device == "cuda":
        config.append_provider("cuda")
        config.set_provider_option("cuda", "enable_cuda_graph", "1" if cuda_graph else "0")
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    settings = json.loads((folder / "genai_config.json").read_text())["model"]
    decoder = settings["decoder"]
    manifest = folder / "npcvoice-model.json"
    half = device == "cuda" and (
        not manifest.exists() or json.loads(manifest.read_text()).get("device") == "cuda"
    )
    bytes_per_token = (
        decoder["num_hidden_layers"]
        * 2
        * decoder["num_key_value_heads"]
        * decoder["head_size"]
        * (2 if half else 4)
    )
    end_ids = {int(t) for t in tokenizer.eos_token_ids}
    start = tokenizer.encode("<|im_start|>")
    if len(start) == 1:
        end_ids.add(int(start[0]))  # a ChatML model that starts a new message has ended its reply
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    log.info(
        "dialogue model %s from %s on %s (%d kB of KV cache per token)",
        model_id, folder, provider, bytes_per_token // 1024,
        extra={"execution_provider": provider},
    )  # fmt: skip
    return LoadedModel(
        model_id=model_id,
        folder=folder,
        model=model,
        tokenizer=tokenizer,
        provider=provider,
        bytes_per_token=bytes_per_token,
        context_length=int(settings.get("context_length", 2048)),
        end_ids=frozenset(end_ids),
    )


def prefill(generator: Any, pending: list[int], size: int, held: list[int] | None = None) -> list[int]:
    """Run the first ``size`` tokens of ``pending`` through ``generator`` (and note them in ``held``, the
    generator's token list); returns the tokens still to prefill. One chunk per worker step keeps a long
    prompt from holding the worker while other replies wait."""
    chunk = pending[:size]
    generator.append_tokens(chunk)
    if held is not None:
        held.extend(chunk)
    return pending[size:]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def check_turn(request: TurnRequest, options: DialogueOptions) -> None:
    """INVALID_ARGUMENT, naming the field and the limit, for anything a request must not carry."""
    text = request.player_text.strip()
    if not text:
        raise InvalidArgument("player_text", "must not be empty")
    if len(request.player_text) > options.max_player_chars:
        raise InvalidArgument("player_text", f"at most {options.max_player_chars} characters")
    if len(request.conversation_id) > MAX_CONVERSATION_ID_CHARS:
        raise InvalidArgument("conversation_id", f"at most {MAX_CONVERSATION_ID_CHARS} characters")
    if len(request.player_name) > MAX_PLAYER_NAME_CHARS:
        raise InvalidArgument("player_name", f"at most {MAX_PLAYER_NAME_CHARS} characters")
    memory = request.memory
    if len(memory.recent_turns) > MAX_MEMORY_TURNS:
        raise InvalidArgument("memory.recent_turns", f"at most {MAX_MEMORY_TURNS} turns")
    if len(memory.player_facts) > MAX_PLAYER_FACTS:
        raise InvalidArgument("memory.player_facts", f"at most {MAX_PLAYER_FACTS} facts")
    size = (
        len(memory.summary)
        + sum(len(t.text) for t in memory.recent_turns)
        + sum(map(len, memory.player_facts))
    )
    if size > options.max_memory_chars:
        raise InvalidArgument("memory", f"at most {options.max_memory_chars} characters of text in all")
    for name, value in (("affinity", memory.affinity), ("trust", memory.trust)):
        if not -1.0 <= value <= 1.0:
            raise InvalidArgument(f"memory.relationship.{name}", "must be between -1 and 1")


class DialogueEngine:
    def __init__(self, options: DialogueOptions, personas: PersonaStore | None = None) -> None:
        self.options = options
        self.personas = personas or PersonaStore(options.persona_dir)
        self.device = resolve_device(options.device)
        self.cache = ConversationCache(int(options.cache_budget_mb * 1024 * 1024))
        self._models: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self._warming: set[str] = set()

    @property
    def model_ids(self) -> list[str]:
        return sorted({BUNDLED_MODEL_ID, *self.options.models})

    def model(self, model_id: str) -> LoadedModel:
        """The loaded model ``model_id`` (loaded on first use); NOT_FOUND for an unknown id."""
        loaded = self._models.get(model_id)
        if loaded is not None:
            return loaded
        if model_id in self.options.models:
            folder = self.options.models[model_id]
        elif model_id == BUNDLED_MODEL_ID:
            folder = bundled_model_folder(self.options.models_dir, self.device)
        else:
            raise NotFound("model", model_id, self.model_ids)
        with self._load_lock:
            if model_id not in self._models:
                self._models[model_id] = load_model(
                    model_id, Path(folder), self.device, self.options.cuda_graph
                )
            return self._models[model_id]

    def persona(self, persona_id: str) -> Persona:
        persona = self.personas.get(persona_id)
        if persona is None:
            raise NotFound("persona", persona_id, [p.id for p in self.personas.all()])
        return persona

    def sampling_for(self, persona: Persona, overrides: SamplingOverrides) -> SamplingSettings:
        d = persona.dialogue

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        settings = SamplingSettings(
            temperature=pick(overrides.temperature, d.temperature),
            top_p=pick(overrides.top_p, d.top_p),
            top_k=pick(overrides.top_k, d.top_k),
            repetition_penalty=pick(overrides.repetition_penalty, d.repetition_penalty),
            max_tokens=pick(overrides.max_tokens, d.max_tokens),
            seed=pick(overrides.seed, d.seed),
            stop=overrides.stop,
        )
        return check_sampling(settings, self.options.max_tokens_limit)

    def begin(self, request: TurnRequest) -> Generation:
        """Check ``request`` and prepare its generation; the model work happens in its steps."""
        check_turn(request, self.options)
        persona = self.persona(request.persona_id)
        sampling = self.sampling_for(persona, request.sampling)
        model = self.model(persona.dialogue.model)
        return Generation(self, model, persona, request, sampling)

    @staticmethod
    def warm_key(model: LoadedModel, persona: Persona) -> str:
        """Cache key of a generator holding only ``persona``'s fixed prompt (changes when it is edited)."""
        digest = hashlib.sha256(persona_core(persona).encode()).hexdigest()[:16]
        return f"~warm:{model.model_id}:{persona.id}:{digest}"

    def begin_warm(self, persona_id: str) -> WarmJob | None:
        """A job that prefills ``persona_id``'s fixed prompt for the next new conversation; None if one
        is ready or being made."""
        persona = self.persona(persona_id)
        model = self.model(persona.dialogue.model)
        key = self.warm_key(model, persona)
        with self._load_lock:
            if key in self.cache or key in self._warming:
                return None
            self._warming.add(key)
        ids = model.prompt_ids([{"role": "system", "content": persona_core(persona)}], reply_next=False)
        return WarmJob(self, model, key, ids, persona.id)

    def warm_done(self, key: str) -> None:
        with self._load_lock:
            self._warming.discard(key)

    def begin_summary(self, persona_id: str, previous: str, turns: list[Turn]) -> SummaryJob:
        """A job condensing ``turns`` (extending ``previous``); run its ``step`` until it returns True."""
        persona = self.persona(persona_id)
        model = self.model(persona.dialogue.model)
        name = persona.display_name
        transcript = "\n".join(f"{'Player' if t.role == 'player' else name}: {t.text}" for t in turns)
        request = (
            f"Earlier summary: {previous}\n" if previous else ""
        ) + f"Conversation:\n{transcript}\n\nSummarize this conversation in one or two sentences."
        messages: list[Message] = [
            {"role": "system", "content": "You write short, factual summaries of conversations."},
            {"role": "user", "content": request},
        ]
        ids = model.prompt_ids(messages)
        if len(ids) + SUMMARY_TOKENS > self.options.context_tokens:
            raise InvalidArgument("turns", f"the turns need more than {self.options.context_tokens} tokens")
        return SummaryJob(model, ids, self.options.prefill_chunk, previous, turns)


class WarmJob:
    """Prefills a persona's fixed prompt into a spare generator, a chunk per step, then caches it."""

    def __init__(
        self, engine: DialogueEngine, model: LoadedModel, key: str, ids: list[int], persona_id: str
    ) -> None:
        self._engine = engine
        self.persona_id = persona_id
        self._model = model
        self.key = key
        self._pending = ids
        self._conversation: Conversation | None = None

    def step(self) -> bool:
        try:
            options = self._engine.options
            if self._conversation is None:
                max_length = min(options.context_tokens, self._model.context_length)
                self._conversation = Conversation(
                    key=self.key,
                    model_id=self._model.model_id,
                    generator=self._model.new_generator(max_length),
                    max_length=max_length,
                    nbytes=max_length * self._model.bytes_per_token,
                )
            # Small chunks: a reply that arrives meanwhile waits for one chunk at most.
            size = min(options.prefill_chunk, WARM_CHUNK)
            self._pending = prefill(
                self._conversation.generator, self._pending, size, self._conversation.tokens
            )
        except BaseException:
            self._engine.warm_done(self.key)
            raise
        if self._pending:
            return False
        self._engine.cache.put(self._conversation)
        self._engine.warm_done(self.key)
        WARM_PREFIXES.labels("built", self.persona_id).inc()
        return True


class SummaryJob:
    """Greedy decoding of a summary, a prompt chunk or a token per step (so replies keep flowing)."""

    def __init__(
        self, model: LoadedModel, ids: list[int], chunk: int, previous: str, turns: list[Turn]
    ) -> None:
        self._model = model
        self._pending = ids
        self._chunk = chunk
        self._previous = previous
        self._turns = turns
        self._generator: Any = None
        self._max_length = len(ids) + SUMMARY_TOKENS
        self._sampler = Sampler(SamplingSettings(temperature=0.0, repetition_penalty=1.1))
        self._stream = model.tokenizer.create_stream()
        self._output: list[int] = []
        self._text = ""

    def step(self) -> bool:
        """One prompt chunk or one token; True when the summary is complete."""
        if self._generator is None:
            self._generator = self._model.new_generator(self._max_length)
        if self._pending:
            self._pending = prefill(self._generator, self._pending, self._chunk)
            return False
        token = self._sampler.pick(self._generator.get_logits()[0, -1], self._output)
        if token in self._model.end_ids or len(self._output) + 1 >= SUMMARY_TOKENS:
            return True
        self._output.append(token)
        self._text += self._stream.decode(token)
        self._generator.append_tokens([token])
        return False

    def result(self) -> tuple[str, list[str]]:
        """The summary (the earlier one with this one appended) and the facts the player told."""
        summary = " ".join(self._text.split())
        if len(self._output) + 1 >= SUMMARY_TOKENS and "." in summary:
            summary = summary[: summary.rfind(".") + 1]  # cut the unfinished sentence
        joined = (
            f"{self._previous} {summary}".strip() if self._previous and summary else summary or self._previous
        )
        return joined, player_facts(self._turns)


class Generation:
    """One reply. ``prefill_step`` until it returns True, then ``decode_step`` until ``done``; ``close``.

    Steps run in worker threads, one at a time. ``close`` may come from another thread while a step is
    still running (a cancelled call): the conversation is handed back when that step ends.
    """

    def __init__(
        self,
        engine: DialogueEngine,
        model: LoadedModel,
        persona: Persona,
        request: TurnRequest,
        sampling: SamplingSettings,
    ) -> None:
        self._engine = engine
        self._model = model
        self.persona = persona
        self.request = request
        self.sampling = sampling
        self.filter = ReplyFilter(persona, request.first_clause)
        # A first clause released on its own counts as a piece of the first sentence, not a sentence.
        self._max_pieces = persona.dialogue.max_sentences + (1 if request.first_clause else 0)
        self._sampler = Sampler(sampling)
        self._stop = StopMatcher(sampling.stop)
        self._stream = model.tokenizer.create_stream()
        self._conversation: Conversation | None = None
        self._keep = bool(request.conversation_id)  # whether the conversation goes back to the cache
        self._pending: list[int] = []
        self._messages: list[Message] = []
        self._reply_tokens: list[int] = []
        self._raw = ""
        self._prompt_tokens = 0
        self._cached_tokens = 0
        self.started = time.perf_counter()
        self._first_token_at: float | None = None
        self.finish_reason = ""
        self._state = threading.Lock()
        self._in_flight = False
        self._closed = False
        self._released = False

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)

    def prefill_step(self) -> bool:
        """Prefill the next chunk of the prompt; True when the whole prompt is in."""
        return bool(self._guarded(self._prefill_step))

    def decode_step(self) -> list[ReplyEvent]:
        """Pick one token and return the events it completes (often none)."""
        return self._guarded(self._decode_step) or []

    def close(self) -> None:
        with self._state:
            self._closed = True
            if not self._in_flight:
                self._release()

    def summary(self) -> GenerationSummary:
        now = time.perf_counter()
        first = self._first_token_at or now
        decode_s = now - first
        tokens = len(self._reply_tokens)
        return GenerationSummary(
            text=self.filter.text,
            finish_reason=self.finish_reason or FINISH_STOP,
            prompt_tokens=self._prompt_tokens,
            cached_prompt_tokens=self._cached_tokens,
            completion_tokens=tokens,
            time_to_first_token_s=first - self.started,
            total_s=now - self.started,
            decode_tokens_per_s=(tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else 0.0,
            dropped_events=self.filter.dropped_events,
            execution_provider=self._model.provider,
        )

    # --- in worker threads ---------------------------------------------------------------------------

    def _guarded(self, step: Callable[[], Any]) -> Any:
        with self._state:
            if self._closed:
                return None
            self._in_flight = True
        try:
            return step()
        except BaseException:
            self._keep = False  # the generator's state is unknown now
            raise
        finally:
            with self._state:
                self._in_flight = False
                if self._closed:
                    self._release()

    def _prefill_step(self) -> bool:
        if self._conversation is None:
            self._start()
        conversation = self._conversation
        assert conversation is not None
        size = self._engine.options.prefill_chunk
        self._pending = prefill(conversation.generator, self._pending, size, conversation.tokens)
        return not self._pending

    def _start(self) -> None:
        """Build the prompt and find how much of it the conversation's generator already holds."""
        engine, model, key = self._engine, self._model, self.request.conversation_id
        conversation = engine.cache.get(key) if key else None
        if conversation is not None and not conversation.busy.acquire(timeout=engine.options.cache_wait_s):
            conversation, self._keep = None, False  # the previous turn still holds it: start afresh
        if conversation is None:  # a new conversation: start from the persona's prefilled prompt if ready
            conversation = engine.cache.take(engine.warm_key(model, self.persona))
            if conversation is not None:
                conversation.key = key
                conversation.busy.acquire()
                WARM_PREFIXES.labels("taken", self.persona.id).inc()
        limit = min(engine.options.context_tokens, model.context_length)
        max_tokens = self.sampling.max_tokens
        tokenized: dict[str, list[int]] = {}

        def count(messages: list[Message]) -> int:
            # The last prompt counted is the one returned: keep its ids rather than tokenize it twice.
            key = json.dumps(messages)
            if key not in tokenized:
                tokenized.clear()
                tokenized[key] = model.prompt_ids(messages)
            return len(tokenized[key])

        self._messages = build_messages(
            self.persona,
            self.request.memory,
            self.request.player_text,
            count,
            limit - max_tokens,
            self.request.player_name,
            rendered=conversation.rendered if conversation is not None else None,
        )
        ids = tokenized.get(json.dumps(self._messages)) or model.prompt_ids(self._messages)
        self._prompt_tokens = len(ids)
        shared = 0
        fits = conversation is not None and len(ids) + max_tokens <= conversation.max_length
        if conversation is not None and fits and conversation.model_id == model.model_id:
            shared = min(common_prefix(conversation.tokens, ids), len(ids) - 1)
        if shared > 0 and conversation is not None:
            if shared < len(conversation.tokens):
                conversation.generator.rewind_to(shared)
                del conversation.tokens[shared:]
        else:
            if conversation is not None:
                engine.cache.discard(key, conversation)
                conversation.busy.release()
            # A conversation that will come back gets the whole context at once: a later turn that
            # outgrew a smaller buffer would need a new generator and a full prefill.
            max_length = limit if key else min(limit, len(ids) + max_tokens)
            conversation = Conversation(
                key=key,
                model_id=model.model_id,
                generator=model.new_generator(max_length),
                max_length=max_length,
                nbytes=max_length * model.bytes_per_token,
            )
            conversation.busy.acquire()
        self._conversation = conversation
        self._cached_tokens = shared
        self._pending = ids[shared:]
        PROMPT_TOKENS.labels("cached").inc(shared)
        PROMPT_TOKENS.labels("prefilled").inc(len(self._pending))

    def _decode_step(self) -> list[ReplyEvent]:
        conversation = self._conversation
        assert conversation is not None and not self._pending
        token = self._sampler.pick(conversation.generator.get_logits()[0, -1], self._reply_tokens)
        if self._first_token_at is None:
            self._first_token_at = time.perf_counter()
            FIRST_TOKEN.labels(str(self._cached_tokens > 0).lower()).observe(
                self._first_token_at - self.started
            )
        if token in self._model.end_ids:
            return self._finish(FINISH_STOP, "")
        self._reply_tokens.append(token)
        COMPLETION_TOKENS.inc()
        released = self._stop.feed(self._stream.decode(token))
        self._raw += released
        if self._stop.stopped:
            return self._finish(FINISH_STOP, released)
        if (
            len(self._reply_tokens) >= self.sampling.max_tokens
            or len(conversation.tokens) + 1 >= conversation.max_length
        ):
            return self._finish(FINISH_LENGTH, released)
        conversation.generator.append_tokens([token])
        conversation.tokens.append(token)
        events = self.filter.feed(released)
        if self.filter.sentences >= self._max_pieces:
            self.finish_reason = FINISH_STOP
            self._remember()
        return events

    def _finish(self, reason: str, released: str) -> list[ReplyEvent]:
        self.finish_reason = reason
        tail = self._stop.flush()
        self._raw += tail
        events = self.filter.feed(released + tail) + self.filter.finish(complete_only=reason == FINISH_LENGTH)
        DROPPED_EVENTS.inc(self.filter.dropped_events)
        self._remember()
        return events

    def _remember(self) -> None:
        """Record how this turn's lines were written, for the next prompt to repeat them exactly."""
        conversation = self._conversation
        if conversation is None:
            return
        rendered: dict[tuple[str, str], str] = {}
        history = self._messages[1:-1]
        turns = self.request.memory.recent_turns[-len(history) :] if history else []
        for turn, message in zip(turns, history, strict=False):
            rendered[(turn.role, turn.text)] = message["content"]
        rendered[("player", self.request.player_text)] = self._messages[-1]["content"]
        if self.filter.text:
            raw = self._raw.strip()
            end = max(raw.rfind(mark) for mark in ".!?")
            if self.finish_reason == FINISH_LENGTH or self.filter.sentences >= self._max_pieces:
                raw = raw[: end + 1] if end > 0 else raw  # the unfinished sentence was never said
            rendered[("npc", self.filter.text)] = raw
        conversation.rendered = rendered

    def _release(self) -> None:
        """Hand the conversation back (to the cache if it is still sound). Called once, under _state."""
        if self._released:
            return
        self._released = True
        conversation = self._conversation
        if conversation is None:
            return
        key = self.request.conversation_id
        if self._keep and key:
            self._engine.cache.put(conversation)
        elif key:
            self._engine.cache.discard(key, conversation)
        conversation.busy.release()
        self._engine.cache.trim()
