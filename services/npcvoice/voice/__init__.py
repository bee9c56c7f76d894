"""Voice (piper): the NPC's speech audio with phoneme timings."""
