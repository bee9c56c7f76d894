"""One request's speech: its text cut into sentences (or a first clause), spoken in order and positioned
one after another in the utterance's samples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from npcvoice.runtime.errors import InvalidArgument
from npcvoice.runtime.workers import WorkerPool
from npcvoice.text import SentenceBuffer, split_for_synthesis
from npcvoice.voice.engine import SpeechChunk, SynthesisSettings, VoiceEngine

# A stream may carry many sentences, but not without end.
STREAM_TEXT_LIMIT_FACTOR = 10


@dataclass(frozen=True)
class Fragment:
    """A piece of text as a client streams it; ``flush`` says the text so far is complete."""

    text: str
    flush: bool = False


class Utterance:
    """Sentences of one request, spoken in order, positioned one after another."""

    def __init__(self, engine: VoiceEngine, workers: WorkerPool, settings: SynthesisSettings) -> None:
        self._engine = engine
        self._workers = workers
        self._settings = settings
        self._next_sample = 0
        self._next_index = 0

    async def say(self, text: str) -> AsyncIterator[SpeechChunk]:
        """The whole text, checked, one chunk per sentence (or first clause)."""
        cleaned = self._engine.check_text(text)
        for piece in split_for_synthesis(cleaned, self._settings.first_clause):
            yield await self._speak(piece)

    async def say_fragments(self, fragments: AsyncIterator[Fragment]) -> AsyncIterator[SpeechChunk]:
        """Each sentence (or first clause) as soon as the fragments complete it; the rest at the end."""
        async for piece in self._sentences(fragments):
            yield await self._speak(piece)

    async def _sentences(self, fragments: AsyncIterator[Fragment]) -> AsyncIterator[str]:
        buffer = SentenceBuffer(first_clause=self._settings.first_clause)
        limit = self._engine.options.max_text_chars * STREAM_TEXT_LIMIT_FACTOR
        received = 0
        async for fragment in fragments:
            received += len(fragment.text)
            if received > limit:
                raise InvalidArgument("fragment.text", f"a stream may carry at most {limit} characters")
            for piece in buffer.add(fragment.text) + (buffer.flush() if fragment.flush else []):
                yield piece
        for piece in buffer.flush():
            yield piece

    async def _speak(self, piece: str) -> SpeechChunk:
        chunk = await self._workers.run(
            self._engine.synthesize_piece, piece, self._settings, self._next_sample, self._next_index
        )
        self._next_sample += chunk.num_samples
        self._next_index += 1
        return chunk
