"""The dialogue engine: a persona's reply from a small language model on onnxruntime-genai.

Domain code only (no protobuf): a request becomes a ``Generation`` (see ``generation``) whose blocking
steps the service runs in worker threads, one prompt chunk or one token at a time, so several
conversations interleave and a cancelled reply stops at the next token.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from npcvoice.dialogue.cache import ConversationCache
from npcvoice.dialogue.feelings import CONTENT_FREE
from npcvoice.dialogue.generation import Generation
from npcvoice.dialogue.jobs import WARM_CHUNK, SummaryJob, WarmJob
from npcvoice.dialogue.model import (
    LoadedModel,
    bundled_model_folder,
    load_model,
    prepared_models,
    resolve_device,
)
from npcvoice.dialogue.options import BUNDLED_MODEL_ID, DEFAULT_MODEL_ID, DialogueOptions
from npcvoice.dialogue.prompt import MemoryView, build_messages, fixed_messages
from npcvoice.dialogue.remote import RemoteModel
from npcvoice.dialogue.sampling import SamplingSettings, check_sampling
from npcvoice.dialogue.tags import TagWriter
from npcvoice.dialogue.types import SamplingOverrides, TurnRequest
from npcvoice.dialogue.vocabulary import TokenTexts
from npcvoice.personas.loader import PersonaStore
from npcvoice.personas.schema import Persona
from npcvoice.runtime.errors import InvalidArgument, NotFound
from npcvoice.turns import Turn
from npcvoice.world import check_world

MAX_CONVERSATION_ID_CHARS = 256
MAX_PLAYER_NAME_CHARS = 80
MAX_MEMORY_TURNS = 300  # a persona keeps up to 200 recent turns, and the window is up to 1.5 times that
MAX_PLAYER_FACTS = 100


def check_turn(request: TurnRequest, options: DialogueOptions) -> None:
    """INVALID_ARGUMENT, naming the field and the limit, for anything a request must not carry."""
    if not request.player_text.strip() and not request.cue.strip() and not request.prefill_only:
        # (a prefill ahead with neither prefills the prompt up to the player's next line)
        raise InvalidArgument("player_text", "must not be empty (or give a cue: the NPC speaks first)")
    for name, text in (("player_text", request.player_text), ("cue", request.cue)):
        if len(text) > options.max_player_chars:
            raise InvalidArgument(name, f"at most {options.max_player_chars} characters")
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
    check_world(memory.world)
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
        self._texts: dict[str, TokenTexts] = {}
        self._load_lock = threading.Lock()
        self._warming: set[str] = set()
        self._remote: dict[str, RemoteModel] = {}
        self.emotion_priors: dict[str, dict[int, float]] = {}

    @property
    def model_ids(self) -> list[str]:
        prepared = prepared_models(self.options.models_dir, self.device)
        return sorted({BUNDLED_MODEL_ID, *prepared, *self.options.models, *self.options.remote_models})

    def remote(self, model_id: str) -> RemoteModel | None:
        """The remote model ``model_id`` (its client made on first use); None if it is not a remote one."""
        options = self.options.remote_models.get(model_id)
        if options is None:
            return None
        if model_id not in self._remote:
            self._remote[model_id] = RemoteModel(model_id, options)
        return self._remote[model_id]

    def escalation(self, persona: Persona) -> RemoteModel | None:
        """The larger model that may take ``persona``'s turns: its own model if that is a remote one, else
        the one it escalates to; None for a persona answered by a local model alone. NOT_FOUND for an
        escalate_to that names no remote model."""
        d = persona.dialogue
        remote = self.remote(d.model)
        if remote is not None:
            return remote
        if d.escalate == "never":
            return None
        remote = self.remote(d.escalate_to)
        if remote is None:
            raise NotFound("remote model", d.escalate_to, sorted(self.options.remote_models))
        return remote

    def remote_for(self, request: TurnRequest) -> RemoteModel | None:
        """The larger model that may take ``request``'s turn (see ``escalation``), the request checked."""
        check_turn(request, self.options)
        return self.escalation(self.persona(request.persona_id))

    def local_model(self, persona: Persona) -> LoadedModel:
        """The local model that writes ``persona``'s replies, openings and summaries (for a persona whose
        model is a remote one: the default model, which answers when the remote one cannot)."""
        model_id = persona.dialogue.model
        return self.model(DEFAULT_MODEL_ID if model_id in self.options.remote_models else model_id)

    async def aclose(self) -> None:
        for remote in self._remote.values():
            await remote.aclose()

    def model(self, model_id: str) -> LoadedModel:
        """The loaded model ``model_id`` (loaded on first use); NOT_FOUND for an unknown id. Models named in
        the options come first, then the bundled one, then those `npcvoice prepare-model` put in the models
        folder (looked up when first asked for, so one prepared while the service runs is found)."""
        loaded = self._models.get(model_id)
        if loaded is not None:
            return loaded
        if model_id in self.options.models:
            folder = self.options.models[model_id]
        elif model_id == BUNDLED_MODEL_ID:
            folder = bundled_model_folder(self.options.models_dir, self.device)
        else:
            found = prepared_models(self.options.models_dir, self.device).get(model_id)
            if found is None:
                raise NotFound("model", model_id, self.model_ids)
            folder = found
        with self._load_lock:
            if model_id not in self._models:
                self._models[model_id] = load_model(
                    model_id,
                    Path(folder),
                    self.device,
                    self.options.cuda_graph,
                    threads=self.options.threads,
                    context_tokens=self.options.context_tokens,
                    spinning=self.options.spinning,
                )
            return self._models[model_id]

    def vocabulary(self, model: LoadedModel) -> TokenTexts:
        """``model``'s tokens as text, shared by its replies (each token is decoded once)."""
        texts = self._texts.get(model.model_id)
        if texts is None:
            texts = self._texts.setdefault(model.model_id, TokenTexts(model.tokenizer))
        return texts

    def persona(self, persona_id: str) -> Persona:
        persona = self.personas.get(persona_id)
        if persona is None:
            raise NotFound("persona", persona_id, [p.id for p in self.personas.all()])
        return persona

    def sampling_for(
        self, persona: Persona, overrides: SamplingOverrides, model: LoadedModel
    ) -> SamplingSettings:
        d = persona.dialogue

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        settings = SamplingSettings(
            temperature=pick(overrides.temperature, pick(d.temperature, model.temperature)),
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
        model = self.local_model(persona)
        sampling = self.sampling_for(persona, request.sampling, model)
        return Generation(self, model, persona, request, sampling)

    @staticmethod
    def warm_key(model: LoadedModel, persona: Persona) -> str:
        """Cache key of a generator holding only ``persona``'s fixed prompt (changes when it is edited)."""
        fixed = fixed_messages(persona, model.prompt_style)
        digest = hashlib.sha256(json.dumps(fixed).encode()).hexdigest()[:16]
        return f"~warm:{model.model_id}:{persona.id}:{digest}"

    def begin_warm(self, persona_id: str) -> WarmJob | None:
        """A job that prefills ``persona_id``'s fixed prompt for the next new conversation; None if one
        is ready or being made."""
        persona = self.persona(persona_id)
        model = self.local_model(persona)
        key = self.warm_key(model, persona)
        with self._load_lock:
            if key in self.cache or key in self._warming:
                return None
            self._warming.add(key)
        fixed = fixed_messages(persona, model.prompt_style)
        ids = model.prompt_ids(fixed, reply_next=False)
        if key in self.emotion_priors:
            return WarmJob(self, model, key, ids, persona.id)
        # Content-free lines, each as a new conversation's prompt up to where the emotion is chosen.
        tags = TagWriter(self.vocabulary(model), persona)
        opening = list(iter(tags.forced, None))
        tails = []
        for line in CONTENT_FREE:
            messages = build_messages(persona, MemoryView(), line, lambda _: 0, 1, style=model.prompt_style)
            prompt = model.prompt_ids(messages) + opening
            if prompt[: len(ids)] == ids:  # (a template that rewrites the fixed part: no calibration)
                tails.append(prompt[len(ids) :])
        choices = tags.emotion_choices()
        return WarmJob(self, model, key, ids, persona.id, tails, choices, persona.emotions[0])

    def warm_done(self, key: str) -> None:
        with self._load_lock:
            self._warming.discard(key)

    def begin_summary(self, persona_id: str, previous: str, turns: list[Turn]) -> SummaryJob:
        """A job condensing ``turns`` (extending ``previous``); run its ``step`` until it returns True."""
        persona = self.persona(persona_id)
        model = self.local_model(persona)
        name = persona.display_name
        speakers = {"player": "Player", "npc": name, "event": "Event"}
        transcript = "\n".join(f"{speakers[t.role]}: {t.text}" for t in turns)
        request = (
            f"Earlier summary: {previous}\n" if previous else ""
        ) + f"Conversation:\n{transcript}\n\nSummarize this conversation in one or two sentences."

        def prompt(text: str) -> list[int]:
            system = "You write short, factual summaries of conversations."
            return model.prompt_ids(
                [{"role": "system", "content": system}, {"role": "user", "content": text}]
            )

        budget = self.options.summary_tokens
        ids = prompt(request)
        if len(ids) + budget // 2 > self.options.context_tokens:
            raise InvalidArgument("turns", f"the turns need more than {self.options.context_tokens} tokens")
        # Small chunks, as for any background work: a reply that arrives meanwhile waits for one at most
        # (a 128-token chunk of a summary held a reply back 300-600 ms on 2 cores: bench/voice_turn.py).
        chunk = min(self.options.prefill_chunk, WARM_CHUNK)
        return SummaryJob(model, prompt, ids, chunk, budget, previous, turns)
