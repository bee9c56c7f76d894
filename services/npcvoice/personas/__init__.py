"""Persona files: the YAML a game writer edits to define an NPC, its schema, loading and validation."""

from npcvoice.personas.loader import PersonaError, PersonaStore, load_persona
from npcvoice.personas.schema import Persona

__all__ = ["Persona", "PersonaError", "PersonaStore", "load_persona"]
