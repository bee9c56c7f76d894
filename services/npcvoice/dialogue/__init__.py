"""Dialogue (a small language model in ONNX Runtime): the NPC's reply in character."""
