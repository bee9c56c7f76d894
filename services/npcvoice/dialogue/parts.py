"""What a reply, a background job and a prompt's reuse need of the engine that runs them, so that they
depend on this and not on the engine module (which depends on them)."""

from __future__ import annotations

from typing import Protocol

from npcvoice.dialogue.cache import ConversationCache
from npcvoice.dialogue.model import LoadedModel
from npcvoice.dialogue.options import DialogueOptions
from npcvoice.dialogue.vocabulary import TokenTexts
from npcvoice.personas.schema import Persona


class EngineParts(Protocol):
    """The dialogue engine as its replies and jobs see it (``DialogueEngine`` is the one)."""

    options: DialogueOptions
    cache: ConversationCache
    # By a persona's warm key: bonuses that calibrate its emotion choice (``feelings.calibration``).
    emotion_priors: dict[str, dict[int, float]]

    def vocabulary(self, model: LoadedModel) -> TokenTexts: ...

    def warm_key(self, model: LoadedModel, persona: Persona) -> str: ...

    def warm_done(self, key: str) -> None: ...
