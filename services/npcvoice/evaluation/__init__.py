"""``npcvoice eval``: scripted conversations with an NPC, run through the real gateway and checked line by
line, for writers to put in their CI."""
