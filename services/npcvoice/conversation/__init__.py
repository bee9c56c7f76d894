"""The conversation gateway: composes speech, dialogue, voice and face per NPC, with memory in Redis."""
