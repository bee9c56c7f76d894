"""A larger model behind the OpenAI chat-completions protocol (vLLM, llama.cpp's server, NIM, Ollama, a
hosted API, another npcvoice dialogue service), streamed through the official ``openai`` client.

Failure is ordinary here: a slow or dead endpoint raises ``RemoteFailure`` quickly (a first-text deadline,
no retries), and after ``breaker_failures`` failures in a row a circuit breaker stops asking it for
``breaker_open_s``; then one trial call decides whether it is back. The caller answers from the small
model meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from openai import AsyncStream
    from openai.types.chat import ChatCompletionChunk

from npcvoice.dialogue.metrics import (
    REMOTE_BREAKER_OPEN,
    REMOTE_FAILURES,
    REMOTE_FIRST_TEXT,
    REMOTE_TOKENS,
)

Message = dict[str, str]  # a chat message (as npcvoice.dialogue.prompt builds them)


class RemoteModelOptions(BaseModel):
    """One entry of the dialogue service's ``remote_models``: a model a persona may name or escalate to."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        min_length=1, description="The endpoint's OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1."
    )
    model: str = Field(min_length=1, description="The model name the endpoint serves.")
    api_key_env: str = Field("", description="Environment variable holding the endpoint's API key.")
    api_key_file: Path | None = Field(None, description="File holding the API key (a mounted secret).")
    first_text_timeout_s: float = Field(
        4.0, gt=0, description="Longest wait for the reply's first text; past it the small model answers."
    )
    timeout_s: float = Field(30.0, gt=0, description="Longest a whole reply may take.")
    max_tokens: int = Field(160, ge=1, le=4096, description="Longest reply asked for, in tokens.")
    temperature: float | None = Field(
        None, ge=0, le=2, description="Unset: the persona's temperature (0.7 if the persona leaves it unset)."
    )
    context_chars: int = Field(
        24000, ge=1000, description="Longest prompt sent, in characters (oldest turns go first)."
    )
    breaker_failures: int = Field(
        3, ge=1, description="Failures in a row after which the endpoint is not asked for a while."
    )
    breaker_open_s: float = Field(30.0, gt=0, description="How long it is not asked; then one trial call.")
    race: bool = Field(
        True,
        description="When a turn is known to escalate before the small model's opening (escalate: always, "
        "a topic, a long line), ask this model at once as well: if its first sentence comes first, it "
        "answers alone. Off: it is asked once, after the opening (no request cancelled half-way, fewer "
        "prompt tokens billed).",
    )
    usage: bool = Field(
        True,
        description="Ask for token usage at the end of the stream (stream_options); off for servers "
        "that reject it.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Fields added to every request (server-specific options)."
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> RemoteModelOptions:
        if self.api_key_env and self.api_key_file:
            raise ValueError("give api_key_env or api_key_file, not both")
        return self

    def api_key(self) -> str:
        """The key from the environment or the secret file; "none" for an endpoint that needs no key."""
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip()
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
            if not key:
                raise RuntimeError(f"the environment variable {self.api_key_env} (an API key) is not set")
            return key
        return "none"


@dataclass
class Spent:
    """Tokens a turn's remote calls used, as the endpoint reported them."""

    tokens: int = 0


class RemoteFailure(Exception):
    """The endpoint did not answer (in time); ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class CircuitBreaker:
    """Closed: calls go through, failures in a row are counted. Open (``failures`` reached): calls are
    refused at once for ``open_s``. Then half-open: one trial call; its success closes the breaker, its
    failure opens it again."""

    def __init__(self, failures: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = failures
        self._open_s = open_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._trial = False  # a half-open trial call is in flight

    @property
    def open(self) -> bool:
        return self._failures >= self._limit and (self._clock() < self._open_until or self._trial)

    def allow(self) -> bool:
        """Whether a call may go now (taking the one trial slot when half-open)."""
        if self._failures < self._limit:
            return True
        if self._clock() < self._open_until or self._trial:
            return False
        self._trial = True
        return True

    def succeeded(self) -> None:
        self._failures, self._trial = 0, False

    def failed(self) -> None:
        self._failures += 1
        self._trial = False
        if self._failures >= self._limit:
            self._open_until = self._clock() + self._open_s


class RemoteModel:
    """One endpoint: streams a reply's text for chat messages, behind its circuit breaker."""

    def __init__(self, model_id: str, options: RemoteModelOptions) -> None:
        import httpx
        from openai import AsyncOpenAI

        self.model_id = model_id
        self.options = options
        self.breaker = CircuitBreaker(options.breaker_failures, options.breaker_open_s)
        self._client = AsyncOpenAI(
            base_url=options.base_url,
            api_key=options.api_key(),
            max_retries=0,  # a retry would only make the player wait longer: the small model answers
            timeout=httpx.Timeout(options.timeout_s, connect=min(options.first_text_timeout_s, 5.0)),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self,
        messages: list[Message],
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
        spent: Spent | None = None,
    ) -> AsyncGenerator[str, None]:
        """The reply's text as it arrives. Raises ``RemoteFailure`` when the breaker is open, when no text
        comes within ``first_text_timeout_s`` or the whole reply within ``timeout_s``, or on any error of
        the endpoint; the breaker counts it."""
        if not self.breaker.allow():
            REMOTE_FAILURES.labels(self.model_id, "breaker_open").inc()
            raise RemoteFailure(
                "breaker_open", f"{self.model_id} failed {self.options.breaker_failures} times"
            )
        options, started = self.options, time.perf_counter()
        try:
            chunks: AsyncStream[ChatCompletionChunk] = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=options.model,
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    max_tokens=min(max_tokens, options.max_tokens),
                    temperature=temperature,
                    top_p=top_p,
                    seed=seed,
                    stop=list(stop) or None,
                    stream_options={"include_usage": True} if options.usage else None,
                    extra_body=options.extra_body or None,
                ),
                options.first_text_timeout_s,
            )
            try:
                async with asyncio.timeout(options.timeout_s):
                    iterator, first = aiter(chunks), True
                    while True:
                        left = options.first_text_timeout_s - (time.perf_counter() - started)
                        try:
                            chunk = await (
                                asyncio.wait_for(anext(iterator), max(left, 0.0))
                                if first
                                else anext(iterator)
                            )
                        except StopAsyncIteration:
                            break
                        if chunk.usage is not None:
                            if spent is not None:
                                spent.tokens += chunk.usage.prompt_tokens + chunk.usage.completion_tokens
                            REMOTE_TOKENS.labels(self.model_id, "prompt").inc(chunk.usage.prompt_tokens)
                            REMOTE_TOKENS.labels(self.model_id, "completion").inc(
                                chunk.usage.completion_tokens
                            )
                        text = chunk.choices[0].delta.content if chunk.choices else None
                        if text:
                            if first:
                                first = False
                                REMOTE_FIRST_TEXT.labels(self.model_id).observe(time.perf_counter() - started)
                            yield text
            finally:
                await chunks.close()
        except (asyncio.CancelledError, GeneratorExit):
            raise  # the turn no longer needs it (barge-in, a sooner answer): not the endpoint's fault
        except TimeoutError as error:
            self._failed("timeout")
            raise RemoteFailure("timeout", f"{self.model_id} took too long") from error
        except Exception as error:
            reason = "status" if getattr(error, "status_code", None) else "connection"
            self._failed(reason)
            raise RemoteFailure(reason, f"{self.model_id}: {error}") from error
        self.breaker.succeeded()
        REMOTE_BREAKER_OPEN.labels(self.model_id).set(0)

    def _failed(self, reason: str) -> None:
        self.breaker.failed()
        REMOTE_FAILURES.labels(self.model_id, reason).inc()
        REMOTE_BREAKER_OPEN.labels(self.model_id).set(int(self.breaker.open))
