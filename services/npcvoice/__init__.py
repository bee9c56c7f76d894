"""npcvoice: a self-hosted NPC conversation suite (speech, dialogue, voice, face, conversation gateway)."""

__version__ = "0.1.0"
